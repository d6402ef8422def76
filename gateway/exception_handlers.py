"""How errors become the workflow API's error body (OpenAI's on the OpenAI-compatible paths):
``TTSError``, invalid requests, HTTP errors (unknown paths among them), an unavailable workflow store
(503) and anything unexpected (500, logged)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.backend import BackendUnavailableError
from gateway.error_bodies import error_json, tts_error_json
from gateway.openai_errors import OpenAIError, from_error, from_workflow_error, speaks_openai
from gateway.responses import ErrorResponse
from gateway.serving_log import log
from tts_api.errors import ErrorCode, TTSError


def shaped(request: Request, exc: TTSError, status_code: int | None = None) -> JSONResponse:
    """The error in the workflow API's body, or in OpenAI's on the OpenAI-compatible paths."""
    status = status_code or exc.code.http_status
    if speaks_openai(request.url.path):
        return from_workflow_error(status, exc.message, exc.code, exc.field)
    return tts_error_json(exc, status_code=status)


async def on_tts_error(request: Request, exc: TTSError) -> JSONResponse:
    return shaped(request, exc)


async def on_openai_error(request: Request, exc: OpenAIError) -> JSONResponse:
    return from_error(exc)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"])
    return shaped(request, TTSError(ErrorCode.INVALID_INPUT, f"{field}: {first['msg']}", field=field))


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.PROCESSING_ERROR
    message = f"{request.method} {request.url.path}: {exc.detail}"
    if speaks_openai(request.url.path):
        response = from_workflow_error(exc.status_code, message, code)
    else:
        response = error_json(ErrorResponse(error=message, error_code=code), exc.status_code)
    response.headers.update(exc.headers or {})  # Allow, on 405
    return response


async def on_backend_unavailable(request: Request, exc: BackendUnavailableError) -> JSONResponse:
    """The workflow store is down or full: 503, nothing done, safe to send again after Retry-After."""
    response = shaped(request, TTSError(ErrorCode.PROCESSING_ERROR, exc.message), status_code=503)
    response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    message = f"internal error ({type(exc).__name__}); the gateway's log has the details"
    return shaped(request, TTSError(ErrorCode.PROCESSING_ERROR, message), status_code=500)


def add_exception_handlers(app: FastAPI) -> None:
    app.exception_handler(TTSError)(on_tts_error)
    app.exception_handler(OpenAIError)(on_openai_error)
    app.exception_handler(RequestValidationError)(on_validation_error)
    app.exception_handler(StarletteHTTPException)(on_http_error)
    app.exception_handler(BackendUnavailableError)(on_backend_unavailable)
    app.exception_handler(Exception)(on_unexpected)
