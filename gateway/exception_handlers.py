"""How errors become the workflow API's error body: ``TTSError``, invalid requests, HTTP errors
(unknown paths among them), an unavailable workflow store (503) and anything unexpected (500,
logged)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.backend import BackendUnavailableError
from gateway.error_bodies import error_json, tts_error_json
from gateway.responses import ErrorResponse
from gateway.serving_log import log
from tts_api.errors import ErrorCode, TTSError


async def on_tts_error(request: Request, exc: TTSError) -> JSONResponse:
    return tts_error_json(exc)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"])
    return tts_error_json(TTSError(ErrorCode.INVALID_INPUT, f"{field}: {first['msg']}", field=field))


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.PROCESSING_ERROR
    message = f"{request.method} {request.url.path}: {exc.detail}"
    response = error_json(ErrorResponse(error=message, error_code=code), exc.status_code)
    response.headers.update(exc.headers or {})  # Allow, on 405
    return response


async def on_backend_unavailable(request: Request, exc: BackendUnavailableError) -> JSONResponse:
    """The workflow store is down or full: 503, nothing done, safe to send again after Retry-After."""
    response = tts_error_json(TTSError(ErrorCode.PROCESSING_ERROR, exc.message), status_code=503)
    response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error serving %s %s", request.method, request.url.path)
    message = f"internal error ({type(exc).__name__}); the gateway's log has the details"
    return error_json(ErrorResponse(error=message, error_code=ErrorCode.PROCESSING_ERROR), 500)


def add_exception_handlers(app: FastAPI) -> None:
    app.exception_handler(TTSError)(on_tts_error)
    app.exception_handler(RequestValidationError)(on_validation_error)
    app.exception_handler(StarletteHTTPException)(on_http_error)
    app.exception_handler(BackendUnavailableError)(on_backend_unavailable)
    app.exception_handler(Exception)(on_unexpected)
