"""The request body's bounds: its size (``TTS_GATEWAY_MAX_BODY_BYTES``, 413) and the time a client
may take to send it (``TTS_GATEWAY_BODY_TIMEOUT_SECONDS``, 408, and the connection is closed).

uvicorn has neither, so this ASGI middleware reads the whole body before the app sees the request,
within both bounds, and hands it on as one message: no route ever waits on a slow client, and a
body over the limit is refused from its ``Content-Length`` before any of it is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.error_bodies import error_json
from gateway.openai_errors import from_workflow_error, speaks_openai
from gateway.responses import ErrorResponse
from tts_api.errors import ErrorCode

VOICE_UPLOAD_PATH = "/v1/audio/voices"


@dataclass(frozen=True)
class BodyLimits:
    max_bytes: int
    timeout_seconds: float
    setting: str = "TTS_GATEWAY_MAX_BODY_BYTES"
    upload_max_bytes: int | None = None

    def of(self, scope: Scope) -> BodyLimits:
        """The limits for this request: a voice upload may be larger than any other body."""
        if self.upload_max_bytes is None or scope.get("method") != "POST":
            return self
        if scope.get("path", "").rstrip("/") != VOICE_UPLOAD_PATH:
            return self
        return BodyLimits(self.upload_max_bytes, self.timeout_seconds, "TTS_GATEWAY_VOICE_UPLOAD_MAX_BYTES")


class BodyRefusedError(Exception):
    """The body broke a bound: answered with ``status_code`` and the workflow API's error body."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def too_large(limits: BodyLimits) -> BodyRefusedError:
    return BodyRefusedError(
        413,
        f"the request body is larger than {limits.max_bytes} bytes ({limits.setting}); send a smaller one",
    )


def too_slow(limits: BodyLimits) -> BodyRefusedError:
    return BodyRefusedError(
        408,
        f"the request body did not arrive within {limits.timeout_seconds:g} s "
        "(TTS_GATEWAY_BODY_TIMEOUT_SECONDS); send the whole body, as long as its Content-Length says",
    )


def declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_body(receive: Receive, limits: BodyLimits) -> tuple[bytes, bool]:
    """The whole body, and whether the client went away while sending it; ``BodyRefusedError`` when it
    grows past the size limit or is not all there in time."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return b"", True
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limits.max_bytes:
                    raise too_large(limits)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks), False
    except TimeoutError:
        raise too_slow(limits) from None


class BodyGuard:
    """Read each HTTP request's body within ``limits`` (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits.of(scope)
        try:
            length = declared_length(scope)
            if length is not None and length > limits.max_bytes:
                raise too_large(limits)
            body, disconnected = await read_body(receive, limits)
        except BodyRefusedError as refusal:
            await refuse(refusal, scope, receive, send)
            return
        if disconnected:
            return
        await self.app(scope, replaying(body, receive), send)


async def refuse(refusal: BodyRefusedError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer with the error body and close the connection: the rest of the body is never read."""
    if speaks_openai(scope.get("path", "")):
        response = from_workflow_error(refusal.status_code, refusal.message, ErrorCode.INVALID_INPUT)
    else:
        body = ErrorResponse(error=refusal.message, error_code=ErrorCode.INVALID_INPUT)
        response = error_json(body, refusal.status_code)
    response.headers["connection"] = "close"
    await response(scope, receive, send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read once, then what the client sends next (a disconnect)."""
    delivered = False

    async def receive_again() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again
