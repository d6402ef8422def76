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

from gateway.monitoring import GpuQuota
from kube_access.client import ConflictError
from kube_access.cluster import ResourceQuotas
from kube_access.workflows import Workflows
from tts_api.policy import ValidationPolicy
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec
from tts_api.validation import read_workflow

log = logging.getLogger(__name__)

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
# After a failed watch, the workflow is read again this long after.
RETRY_SECONDS = 1.0


class WorkflowExistsError(Exception):
    """A workflow of that name already exists."""


class KubernetesBackend:
    def __init__(self, api_client: Any, namespace: str, policy: ValidationPolicy) -> None:
        self._workflows = Workflows(api_client)
        self._quotas = ResourceQuotas(api_client)
        self._namespace = namespace
        self._policy = policy

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

    async def workflows(self) -> AsyncIterator[TTSWorkflow]:
        async for body in self._workflows.each(self._namespace):
            yield self._read(body)

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


@contextlib.asynccontextmanager
async def open_kubernetes_backend(
    api_client: Any, namespace: str, policy: ValidationPolicy
) -> AsyncIterator[KubernetesBackend]:
    yield KubernetesBackend(api_client, namespace, policy)
