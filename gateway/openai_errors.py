"""OpenAI's error body for the OpenAI-compatible routes: ``{"error": {"message", "type", "param",
"code"}}`` with the status OpenAI gives. Every error on those paths (a refused key, a body too large,
an unknown path under them, a failed synthesis) is answered in this shape; the workflow API keeps its
own."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tts_api.errors import ErrorCode

OPENAI_PATH_PREFIXES = ("/v1/audio/", "/v1/models")


def speaks_openai(path: str) -> bool:
    """True for the paths of the OpenAI-compatible routes."""
    return path.startswith(OPENAI_PATH_PREFIXES) or path == "/v1/audio"


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error body (documented in the OpenAPI document for the OpenAI-compatible routes)."""

    error: OpenAIErrorDetail


class OpenAIError(Exception):
    """An error answered in OpenAI's shape; ``param`` names the request field at fault."""

    def __init__(
        self, status_code: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code


def error_type(status_code: int) -> str:
    """OpenAI's ``type`` for a status."""
    if status_code == 401:
        return "authentication_error"
    if status_code == 403:
        return "permission_error"
    if status_code == 429:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_json(
    status_code: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type(status_code), "param": param, "code": code}}
    return JSONResponse(body, status_code=status_code, headers=headers)


def from_error(error: OpenAIError) -> JSONResponse:
    return openai_error_json(error.status_code, error.message, param=error.param, code=error.code)


def from_workflow_error(
    status_code: int, message: str, code: ErrorCode, field: str | None = None
) -> JSONResponse:
    """A workflow API error (its ``error_code`` kept as OpenAI's ``code``), in OpenAI's shape."""
    return openai_error_json(status_code, message, param=field, code=code.value.lower())
