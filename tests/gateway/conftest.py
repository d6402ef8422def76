"""A gateway over the local store on a real nats-server; tests play the operator by writing status."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.worker_directory import open_worker_directory
from local_mode.record_store import LocalWorkflowStore
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow, TTSWorkflowStatus

GatewayFactory = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]

# Every route that takes a workflow id, as (method, path with ``{id}``).
ID_ROUTES = [
    ("GET", "/v1/workflows/status/{id}"),
    ("GET", "/v1/workflows/{id}"),
    ("GET", "/v1/workflows/{id}/audio"),
    ("DELETE", "/v1/workflows/{id}"),
]


def not_found_body(workflow_id: str) -> dict[str, Any]:
    """The answer for an id that names no workflow, on every route and in both backends."""
    return {
        "status": "error",
        "error": f"no workflow {workflow_id!r}: check the id returned by POST /v1/workflows "
        "(finished workflows are deleted after their time to live)",
        "error_code": "WORKFLOW_NOT_FOUND",
        "task_id": None,
        "workflow_id": workflow_id,
        "field": None,
    }


@pytest.fixture
def gateway(store: LocalWorkflowStore, policy: ValidationPolicy, nats_url: str) -> GatewayFactory:
    """``gateway(**settings)`` is an HTTP client for a gateway with those settings."""

    @contextlib.asynccontextmanager
    async def make(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
        @contextlib.asynccontextmanager
        async def open_store() -> AsyncIterator[LocalWorkflowStore]:
            yield store

        app = create_app(
            GatewaySettings(**settings), open_store, policy, lambda: open_worker_directory(nats_url)
        )
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                yield client

    return make


async def settle(
    store: LocalWorkflowStore, status: Callable[[TTSWorkflow], TTSWorkflowStatus]
) -> TTSWorkflow:
    """Play the operator: wait for the next workflow to appear and write ``status(workflow)`` to it."""
    async with asyncio.timeout(10):
        while True:
            for workflow in await store.list():
                if not workflow.status.phase.finished and workflow.status.accepted_at is None:
                    stored = await store.read(workflow.metadata.name)
                    assert stored is not None
                    await store.replace_status(
                        workflow.metadata.name, status(workflow), revision=stored.revision
                    )
                    return workflow
            await asyncio.sleep(0.02)
