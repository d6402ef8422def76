"""The optional API key (the IndexTTS service API (v1): 基于 API Key（可选）): which key a request
presents, and whether it matches, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from tts_api.errors import ErrorCode, TTSError

API_KEY_HEADER = "x-api-key"
BEARER_PREFIX = "bearer "


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key in ``X-API-Key``, else in ``Authorization: Bearer KEY``; None when neither is sent.

    ``headers`` must be case-insensitive on names (Starlette's are).
    """
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith(BEARER_PREFIX):
        return authorization[len(BEARER_PREFIX) :].strip() or None
    return None


def key_accepted(presented: str | None, configured: str | None) -> bool:
    """True when no key is configured, or the presented one equals it (constant-time)."""
    if not configured:
        return True
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode(), configured.encode())


class AuthenticationError(TTSError):
    """No key, or the wrong one, where one is configured (answered with HTTP 401)."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.INVALID_INPUT,
            "missing or wrong API key: send it as `X-API-Key: KEY` or `Authorization: Bearer KEY`",
            field="X-API-Key",
        )
