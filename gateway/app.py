"""The REST gateway: the seed's ``/v1/workflows`` API and monitoring, over a workflow backend.

Synchronous by default, like the seed: ``POST /v1/workflows`` waits for the result up to
``TTS_GATEWAY_SYNC_WAIT_SECONDS``. Asynchronous on request (``?async=true`` or the header
``Prefer: respond-async``): ``202`` with the workflow id at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.auth import AuthenticationError, key_accepted, presented_key
from gateway.backend import BackendFactory, WorkflowBackend
from gateway.metrics import REQUEST_SECONDS, REQUESTS, WORKFLOWS_SUBMITTED
from gateway.monitoring import (
    GpuLockHealthResponse,
    HeartbeatAllResponse,
    StatisticsResponse,
    gpu_lock_health,
    heartbeat_all,
    statistics,
)
from gateway.presenters import result_response, status_response, status_url
from gateway.responses import AcceptedResponse, ErrorResponse, WorkflowStatusResponse
from gateway.settings import GatewaySettings
from gateway.worker_directory import WorkerDirectory
from tts_api.constants import Phase
from tts_api.errors import ErrorCode, TTSError
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow, TTSWorkflowSpec
from tts_api.shared_paths import SharedPathError
from tts_api.validation import parse_request

log = logging.getLogger(__name__)

UNAUTHENTICATED_PATHS = frozenset({"/healthz"})


Part = TypeVar("Part")
WorkerDirectoryFactory = Callable[[], contextlib.AbstractAsyncContextManager[WorkerDirectory]]


@dataclass
class OpenedParts:
    """What the app's lifespan opened: set while it serves, absent before and after."""

    workflows: WorkflowBackend | None = None
    workers: WorkerDirectory | None = None

    @staticmethod
    def need(part: Part | None) -> Part:
        if part is None:
            raise RuntimeError("the gateway is not serving: its backends are not open")
        return part


def new_workflow_name() -> str:
    """A fresh name, valid as a Kubernetes object name and a NATS KV key."""
    return f"wf-{uuid.uuid4().hex[:16]}"


def finished(workflow: TTSWorkflow) -> bool:
    return workflow.status.phase.finished


def wants_async(request: Request) -> bool:
    flag = request.query_params.get("async", "").lower() in {"1", "true", "yes"}
    return flag or "respond-async" in request.headers.get("prefer", "").lower()


def error_json(error: ErrorResponse, status_code: int) -> JSONResponse:
    """Every key of the seed's error body is present, null when unknown (seed clients index them)."""
    return JSONResponse(error.model_dump(mode="json"), status_code=status_code)


def tts_error_json(
    exc: TTSError, *, status_code: int | None = None, workflow_id: str | None = None
) -> JSONResponse:
    body = ErrorResponse(error=exc.message, error_code=exc.code, field=exc.field, workflow_id=workflow_id)
    return error_json(body, status_code or exc.code.http_status)


def not_found(workflow_id: str) -> JSONResponse:
    return tts_error_json(
        TTSError(
            ErrorCode.INVALID_INPUT,
            f"no workflow {workflow_id!r}: check the id returned by POST /v1/workflows "
            "(finished workflows are deleted after their time to live)",
        ),
        status_code=404,
        workflow_id=workflow_id,
    )


def create_app(
    settings: GatewaySettings,
    open_backend: BackendFactory,
    policy: ValidationPolicy,
    open_workers: WorkerDirectoryFactory,
) -> FastAPI:
    """The gateway over the workflow backend and worker directory the factories yield for the app's
    lifetime; ``policy`` validates requests and locates audio files."""
    configured_key = settings.api_key.get_secret_value() if settings.api_key else None
    opened = OpenedParts()

    def workflows() -> WorkflowBackend:
        return opened.need(opened.workflows)

    def workers() -> WorkerDirectory:
        return opened.need(opened.workers)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_backend() as backend, open_workers() as directory:
            opened.workflows, opened.workers = backend, directory
            log.info("gateway ready on %s:%s", settings.host, settings.port)
            yield
            opened.workflows = opened.workers = None

    app = FastAPI(
        title="IndexTTS2 on Kubernetes",
        description="The seed's IndexTTS Service API over TTSWorkflow resources.",
        version="v1",
        lifespan=lifespan,
    )

    @app.middleware("http")
    async def require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every path but liveness, the OpenAPI pages included, needs the key when one is set."""
        if request.url.path in UNAUTHENTICATED_PATHS or key_accepted(
            presented_key(request.headers), configured_key
        ):
            return await call_next(request)
        return tts_error_json(AuthenticationError(), status_code=401)

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        REQUEST_SECONDS.labels(request.method, path).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(TTSError)
    async def on_tts_error(request: Request, exc: TTSError) -> JSONResponse:
        return tts_error_json(exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first["loc"])
        return tts_error_json(TTSError(ErrorCode.INVALID_INPUT, f"{field}: {first['msg']}", field=field))

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.INVALID_INPUT if exc.status_code < 500 else ErrorCode.PROCESSING_ERROR
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return error_json(ErrorResponse(error=message, error_code=code), exc.status_code)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s %s", request.method, request.url.path)
        message = f"internal error ({type(exc).__name__}); the gateway's log has the details"
        return error_json(ErrorResponse(error=message, error_code=ErrorCode.PROCESSING_ERROR), 500)

    # --- workflows ------------------------------------------------------------------------------

    @app.post("/v1/workflows", summary="Create a workflow (the seed's four tasks)")
    async def create_workflow(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body: Any = json.loads(raw or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TTSError(ErrorCode.INVALID_INPUT, f"the request body is not valid JSON: {exc}") from None
        accepted = parse_request(body, policy=policy)
        spec = TTSWorkflowSpec.from_request(accepted)
        workflow = await workflows().create(new_workflow_name(), spec)
        name = workflow.metadata.name
        WORKFLOWS_SUBMITTED.labels("async" if wants_async(request) else "sync").inc()
        log.info(
            "workflow %s created: %s", name, ", ".join(t.value for t in spec.workflow_config.workflow_chain)
        )
        if not wants_async(request):
            done = await workflows().wait(name, finished, settings.sync_wait_seconds)
            if done is not None and finished(done):
                return result_json(done)
        accepted_body = AcceptedResponse(workflow_id=name, status_url=status_url(workflow))
        return JSONResponse(accepted_body.model_dump(mode="json"), status_code=202)

    def result_json(workflow: TTSWorkflow) -> JSONResponse:
        """The result of a finished workflow, its error, or its status (202) while it runs."""
        result = result_response(workflow)
        if result is None:
            return JSONResponse(status_response(workflow).model_dump(mode="json"), status_code=202)
        if isinstance(result, ErrorResponse):
            return error_json(result, result.error_code.http_status)
        return JSONResponse(result.model_dump(mode="json"))

    @app.get("/v1/workflows/status/{workflow_id}", response_model=WorkflowStatusResponse)
    async def workflow_status(workflow_id: str) -> Response:
        workflow = await workflows().get(workflow_id)
        if workflow is None:
            return not_found(workflow_id)
        return JSONResponse(status_response(workflow).model_dump(mode="json"))

    @app.get("/v1/workflows/{workflow_id}", summary="The workflow's result, or its status while it runs")
    async def workflow_result(workflow_id: str) -> Response:
        workflow = await workflows().get(workflow_id)
        if workflow is None:
            return not_found(workflow_id)
        return result_json(workflow)

    @app.get("/v1/workflows/{workflow_id}/audio", response_class=FileResponse, summary="Download the WAV")
    async def workflow_audio(workflow_id: str) -> Response:
        workflow = await workflows().get(workflow_id)
        if workflow is None:
            return not_found(workflow_id)
        result = workflow.status.result
        if workflow.status.phase is not Phase.SUCCEEDED or result is None:
            state = workflow.status.phase.value.lower()
            raise TTSError(
                ErrorCode.INVALID_INPUT,
                f"workflow {workflow_id} has no audio (it is {state}; audio exists once "
                "indextts.generate_speech has succeeded)",
            )
        root = policy.shared_root
        if not root.is_mounted():
            raise TTSError(
                ErrorCode.PROCESSING_ERROR,
                f"this gateway cannot read the shared volume at {root.directory}; mount it "
                "(TTS_SHARED_DIR) to serve audio",
            )
        try:
            path = root.local_path(result.output_path)
        except SharedPathError as exc:
            raise TTSError(ErrorCode.PROCESSING_ERROR, f"output_path: {exc}") from None
        if not path.is_file():
            raise TTSError(
                ErrorCode.PROCESSING_ERROR, f"{result.output_path} is no longer on the shared volume"
            )
        return FileResponse(path, media_type="audio/wav", filename=path.name)

    @app.delete("/v1/workflows/{workflow_id}", summary="Cancel and delete a workflow")
    async def delete_workflow(workflow_id: str) -> Response:
        if not await workflows().delete(workflow_id):
            return not_found(workflow_id)
        log.info("workflow %s deleted on request", workflow_id)
        return JSONResponse({"status": "deleted", "workflow_id": workflow_id})

    # --- monitoring -----------------------------------------------------------------------------

    @app.get("/api/v1/monitoring/heartbeat/all", response_model=HeartbeatAllResponse)
    async def heartbeats() -> HeartbeatAllResponse:
        return heartbeat_all(await workflows().list())

    @app.get("/api/v1/monitoring/gpu-lock/health", response_model=GpuLockHealthResponse)
    async def gpu_lock() -> GpuLockHealthResponse:
        directory = workers()
        return gpu_lock_health(
            await directory.entries(), await workflows().list(), quota=await directory.gpu_quota()
        )

    @app.get("/api/v1/monitoring/statistics", response_model=StatisticsResponse)
    async def stats() -> StatisticsResponse:
        return statistics(await workers().entries(), await workflows().list())

    # --- operations -----------------------------------------------------------------------------

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await workflows().ping()
        except Exception as exc:
            log.warning("not ready: the workflow backend does not answer: %s", exc)
            return JSONResponse({"status": "not ready", "reason": str(exc)}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
