"""The gateway's HTTP middleware: the request body's bounds, the API key check, and the request
counters for ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from gateway.app_state import settings_of
from gateway.auth import AuthenticationError, key_accepted, presented_key
from gateway.body_guard import BodyGuard, BodyLimits
from gateway.error_bodies import tts_error_json
from gateway.metrics import REQUEST_SECONDS, REQUESTS
from gateway.openai_errors import openai_error_json, speaks_openai

# Liveness, and the playground page (it holds no secret; its requests carry the key).
UNAUTHENTICATED_PATHS = frozenset({"/healthz", "/", "/playground"})

CallNext = Callable[[Request], Awaitable[Response]]


async def require_key(request: Request, call_next: CallNext) -> Response:
    """Every path but liveness and the playground page, the OpenAPI pages included, needs the key
    when one is set."""
    api_key = settings_of(request.app).api_key
    configured_key = api_key.get_secret_value() if api_key else None
    if request.url.path in UNAUTHENTICATED_PATHS or key_accepted(
        presented_key(request.headers), configured_key
    ):
        return await call_next(request)
    refused = AuthenticationError()
    if speaks_openai(request.url.path):
        return openai_error_json(401, refused.message, code="invalid_api_key")
    return tts_error_json(refused, status_code=401)


async def count_requests(request: Request, call_next: CallNext) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    path = getattr(route, "path", "unmatched")
    REQUESTS.labels(request.method, path, str(response.status_code)).inc()
    REQUEST_SECONDS.labels(request.method, path).observe(time.perf_counter() - started)
    return response


def add_middleware(app: FastAPI) -> None:
    """The counters outermost, so refused requests (401, 408, 413) are counted too; the key checked
    before the body is read, so that a client without it cannot make the gateway read one."""
    settings = settings_of(app)
    limits = BodyLimits(
        settings.max_body_bytes,
        settings.body_timeout_seconds,
        upload_max_bytes=max(settings.voice_upload_max_bytes, settings.max_body_bytes),
    )
    app.add_middleware(BodyGuard, limits=limits)
    app.middleware("http")(require_key)
    app.middleware("http")(count_requests)
