"""The gateway's workflows in a cluster: TTSWorkflow objects through the Kubernetes API.

The gateway creates, reads, lists and deletes TTSWorkflows in its namespace (its Role allows just
that) and reads the namespace's ResourceQuota on ``requests.nvidia.com/gpu``, the GPU lock's
capacity. Every call goes through :mod:`kube_access`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.backend import BackendUnavailableError
from gateway.live_tally import LiveTally
from gateway.monitoring import GpuQuota, Tally
from kube_access.client import ConflictError
from kube_access.cluster import ResourceQuotas
from kube_access.workflows import Workflows
from nats_support.tasks import cancel_and_wait
from tts_api.policy import ValidationPolicy
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec
from tts_api.validation import read_workflow, read_workflow_status

log = logging.getLogger(__name__)

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
# After a failed watch, the workflow is read again this long after.
RETRY_SECONDS = 1.0
# How long the monitoring watch of every workflow lasts before it is opened again from where it was.
WATCH_SECONDS = 300.0
# How long a monitoring view waits for the first listing of the workflows.
CATCH_UP_SECONDS = 10.0


class WorkflowExistsError(Exception):
    """A workflow of that name already exists."""


class KubernetesBackend:
    def __init__(self, api_client: Any, namespace: str, policy: ValidationPolicy) -> None:
        self._workflows = Workflows(api_client)
        self._quotas = ResourceQuotas(api_client)
        self._namespace = namespace
        self._policy = policy
        self._live = LiveTally()
        self._caught_up = asyncio.Event()
        self._follower: asyncio.Task[None] | None = None

    def _read(self, body: dict[str, Any]) -> TTSWorkflow:
        return read_workflow(body, policy=self._policy)

    async def ping(self) -> None:
        await self._workflows.list(self._namespace, limit=1)

    async def create(self, name: str, spec: TTSWorkflowSpec) -> TTSWorkflow:
        body = TTSWorkflow(metadata=ObjectMeta(name=name, namespace=self._namespace), spec=spec).to_k8s()
        try:
            created = await self._workflows.create(self._namespace, body)
        except ConflictError:
            raise WorkflowExistsError(f"a workflow named {name!r} already exists") from None
        return self._read(created)

    async def get(self, name: str) -> TTSWorkflow | None:
        body = await self._workflows.get(self._namespace, name)
        return self._read(body) if body is not None else None

    async def tally(self) -> Tally:
        """The monitoring tally of the namespace's workflows, kept by one watch (started by the
        first call): listed once in pages, then followed change by change."""
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="gateway-workflows-follower")
        try:
            await asyncio.wait_for(self._caught_up.wait(), CATCH_UP_SECONDS)
        except TimeoutError:
            raise BackendUnavailableError(
                "the workflows are still being read from the Kubernetes API: send the request again "
                "in a few seconds, and see the gateway's log if it persists"
            ) from None
        return self._live.tally()

    async def close(self) -> None:
        if self._follower is not None:
            await cancel_and_wait(self._follower)
            self._follower = None

    async def _follow(self) -> None:
        """List every workflow, then watch from that version; a watch the server ends is opened
        again from the last version seen, and one that fails (the version expired, the connection
        dropped) starts over with a new listing, the views waiting for it (and answering 503 while
        the API server does not answer)."""
        while True:
            try:
                version = await self._relist()
                while True:
                    version = await self._watch_from(version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Until the listing succeeds again the tally may be stale: the views wait for it.
                self._caught_up.clear()
                log.info("watching the workflows failed (%s); listing them again", exc)
            await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self) -> str:
        live = LiveTally()
        version = ""
        async for page in self._workflows.pages(self._namespace):
            version = page.resource_version
            for body in page.items:
                live.note(_name(body), read_workflow_status(body))
        self._live = live
        self._caught_up.set()
        return version

    async def _watch_from(self, version: str) -> str:
        async for kind, body in self._workflows.watch(
            self._namespace, None, resource_version=version, timeout_seconds=WATCH_SECONDS
        ):
            version = (body.get("metadata") or {}).get("resourceVersion") or version
            if kind == "DELETED":
                self._live.forget(_name(body))
            elif kind in ("ADDED", "MODIFIED"):
                self._live.note(_name(body), read_workflow_status(body))
        return version

    async def delete(self, name: str) -> bool:
        return await self._workflows.delete(self._namespace, name)

    async def wait(
        self, name: str, predicate: Callable[[TTSWorkflow], bool], wait_seconds: float
    ) -> TTSWorkflow | None:
        """The workflow once ``predicate`` holds, or as it is when ``wait_seconds`` run out; None when
        it is gone. Reads it, then watches it from that version; should a watch fail (an API server
        that lost the version, a dropped connection), reads it again after a pause."""
        deadline = time.monotonic() + wait_seconds
        while True:
            body = await self._workflows.get(self._namespace, name)
            if body is None:
                return None
            workflow = self._read(body)
            left = deadline - time.monotonic()
            if predicate(workflow) or left <= 0:
                return workflow
            version = (body.get("metadata") or {}).get("resourceVersion")
            watched_at = time.monotonic()
            try:
                async for kind, changed in self._workflows.watch(
                    self._namespace, name, resource_version=version, timeout_seconds=left
                ):
                    if kind == "DELETED":
                        return None
                    workflow = self._read(changed)
                    if predicate(workflow):
                        return workflow
                    if time.monotonic() >= deadline:
                        return workflow
            except Exception as exc:
                log.info("watching workflow %s failed (%s); reading it again", name, exc)
            # A watch that failed, or that the server ended at once, is not retried in a tight loop.
            if time.monotonic() - watched_at < RETRY_SECONDS:
                await asyncio.sleep(min(RETRY_SECONDS, max(0.0, deadline - time.monotonic())))

    async def gpu_quota(self) -> GpuQuota | None:
        """The namespace's quota on ``requests.nvidia.com/gpu``, if one is set."""
        for quota in await self._quotas.list(self._namespace):
            if GPU_QUOTA_KEY not in quota.hard:
                continue
            try:
                return GpuQuota(
                    name=quota.name,
                    hard=int(quota.hard[GPU_QUOTA_KEY]),
                    used=int(quota.used.get(GPU_QUOTA_KEY, 0)),
                )
            except ValueError:
                log.warning("ResourceQuota %s has a GPU figure that is not a whole number", quota.name)
        return None


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name", ""))


@contextlib.asynccontextmanager
async def open_kubernetes_backend(
    api_client: Any, namespace: str, policy: ValidationPolicy
) -> AsyncIterator[KubernetesBackend]:
    backend = KubernetesBackend(api_client, namespace, policy)
    try:
        yield backend
    finally:
        await backend.close()
