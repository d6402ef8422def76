"""Where the gateway keeps workflows: the Kubernetes API in a cluster, NATS KV in local mode."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from gateway.monitoring import Tally
from tts_api.resource import TTSWorkflow, TTSWorkflowSpec


class BackendUnavailableError(Exception):
    """The workflow store cannot be reached or cannot store writes now (it is restarting, its disk
    is full): nothing was done, and the same request may be sent again once it is back. The
    gateway answers 503 with the workflow API's error body; the message says what is wrong and
    what to do."""

    def __init__(self, message: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_seconds = retry_after_seconds


class WorkflowBackend(Protocol):
    async def ping(self) -> None:
        """Raise when the backend cannot be reached or cannot store writes (readiness)."""
        ...

    async def create(self, name: str, spec: TTSWorkflowSpec) -> TTSWorkflow:
        """Create the workflow; raise an error whose name ends in ``ExistsError`` if taken."""
        ...

    async def get(self, name: str) -> TTSWorkflow | None: ...

    async def tally(self) -> Tally:
        """The monitoring tally of every workflow (kept by a watch: reading it reads no workflow)."""
        ...

    async def delete(self, name: str) -> bool:
        """Delete it (the operator cancels its job in flight); False when there was none."""
        ...

    async def wait(
        self, name: str, predicate: Callable[[TTSWorkflow], bool], wait_seconds: float
    ) -> TTSWorkflow | None:
        """The workflow once ``predicate`` holds, or its latest state after ``wait_seconds``."""
        ...


def finished(workflow: TTSWorkflow) -> bool:
    """The predicate to ``wait`` for a workflow's end: succeeded, failed or cancelled."""
    return workflow.status.phase.finished


BackendFactory = Callable[[], AbstractAsyncContextManager[WorkflowBackend]]
