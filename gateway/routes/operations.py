"""Operations: liveness (``/healthz``), readiness (``/readyz``: the workflow backend answers) and the
Prometheus metrics (``/metrics``); none of them in the OpenAPI schema."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.app_state import Opened
from gateway.serving_log import log

router = APIRouter()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", include_in_schema=False)
async def readyz(opened: Opened) -> JSONResponse:
    try:
        await opened.backend().ping()
    except Exception as exc:
        log.warning("not ready: the workflow backend does not answer: %s", exc)
        return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
