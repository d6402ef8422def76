"""The monitoring listener (``TTS_GATEWAY_METRICS_PORT``): ``/healthz``, ``/readyz`` and ``/metrics``
without the API key, for the kubelet's probes and Prometheus, on a port apart from the workflow
API's (which still serves the three, ``/readyz`` and ``/metrics`` behind the key when one is set).

It reads the API app's settings and opened parts, so ``/readyz`` asks the very backend the API app
serves from; it opens nothing itself.
"""

from __future__ import annotations

from fastapi import FastAPI

from gateway.body_guard import BodyGuard, BodyLimits
from gateway.exception_handlers import add_exception_handlers
from gateway.routes import operations


def create_monitoring_app(api: FastAPI) -> FastAPI:
    """The operations routes over ``api``'s state, with no key, no OpenAPI pages, no counters."""
    app = FastAPI(title="IndexTTS2 gateway monitoring", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.settings = api.state.settings
    app.state.policy = api.state.policy
    app.state.opened = api.state.opened
    settings = api.state.settings
    app.add_middleware(BodyGuard, limits=BodyLimits(settings.max_body_bytes, settings.body_timeout_seconds))
    add_exception_handlers(app)
    app.include_router(operations.router)
    return app
