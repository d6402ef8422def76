"""The gateway's workflows in a cluster: TTSWorkflow objects through the Kubernetes API.

The gateway creates, reads, lists and deletes TTSWorkflows in its namespace (its Role allows just
that) and reads the namespace's ResourceQuota on ``requests.nvidia.com/gpu``, the GPU lock's
capacity. The official client is synchronous: every call runs off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.monitoring import GpuQuota
from tts_api.constants import API_GROUP, API_VERSION, PLURAL
from tts_api.errors import TTSError
from tts_api.policy import ValidationPolicy
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec
from tts_api.validation import read_workflow
from tts_operator.store import read_workflow_body

log = logging.getLogger(__name__)

GPU_QUOTA_KEY = "requests.nvidia.com/gpu"
# A synchronous request polls its workflow, first often (fast tasks), then at most this often.
MAX_POLL_SECONDS = 1.0


class WorkflowExistsError(Exception):
    """A workflow of that name already exists."""


class KubernetesBackend:
    def __init__(self, api_client: Any, namespace: str, policy: ValidationPolicy) -> None:
        from kubernetes import client

        # Typed loosely: the client's generated signatures return ``object`` for custom objects.
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self._namespace = namespace
        self._policy = policy

    def _read(self, body: dict[str, Any]) -> TTSWorkflow:
        return read_workflow(body, policy=self._policy)

    async def ping(self) -> None:
        await asyncio.to_thread(
            self._custom.list_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            self._namespace,
            PLURAL,
            limit=1,
        )

    async def create(self, name: str, spec: TTSWorkflowSpec) -> TTSWorkflow:
        from kubernetes.client import ApiException

        body = TTSWorkflow(metadata=ObjectMeta(name=name, namespace=self._namespace), spec=spec).to_k8s()
        try:
            created = await asyncio.to_thread(
                self._custom.create_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self._namespace,
                PLURAL,
                body,
            )
        except ApiException as exc:
            if exc.status == 409:
                raise WorkflowExistsError(f"a workflow named {name!r} already exists") from None
            raise
        # A real API server answers with the object (uid, creationTimestamp); an emulator may not.
        return self._read(created if isinstance(created, dict) else body)

    async def get(self, name: str) -> TTSWorkflow | None:
        body = await read_workflow_body(self._custom, self._namespace, name)
        return self._read(body) if body is not None else None

    async def list(self) -> list[TTSWorkflow]:
        listing = await asyncio.to_thread(
            self._custom.list_namespaced_custom_object, API_GROUP, API_VERSION, self._namespace, PLURAL
        )
        found: list[TTSWorkflow] = []
        for body in listing.get("items", []):
            try:
                found.append(self._read(body))
            except TTSError as exc:  # written by hand around the CRD's schema: show the others
                name = (body.get("metadata") or {}).get("name")
                log.warning("skipping TTSWorkflow %s: %s", name, exc.message)
        return found

    async def delete(self, name: str) -> bool:
        from kubernetes.client import ApiException

        try:
            await asyncio.to_thread(
                self._custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self._namespace,
                PLURAL,
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def wait(
        self, name: str, predicate: Callable[[TTSWorkflow], bool], wait_seconds: float
    ) -> TTSWorkflow | None:
        """Poll the workflow (every 50 ms at first, backing off to 1 s) until ``predicate`` holds."""
        deadline = time.monotonic() + wait_seconds
        pause = 0.05
        while True:
            workflow = await self.get(name)
            if workflow is None or predicate(workflow) or time.monotonic() >= deadline:
                return workflow
            await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(MAX_POLL_SECONDS, pause * 1.5)

    async def gpu_quota(self) -> GpuQuota | None:
        """The namespace's quota on ``requests.nvidia.com/gpu``, if one is set."""
        listing = await asyncio.to_thread(self._core.list_namespaced_resource_quota, self._namespace)
        for quota in listing.items:
            hard = (
                (quota.status.hard if quota.status and quota.status.hard else None) or quota.spec.hard or {}
            )
            if GPU_QUOTA_KEY not in hard:
                continue
            used = (quota.status.used if quota.status and quota.status.used else None) or {}
            try:
                return GpuQuota(
                    name=quota.metadata.name,
                    hard=int(hard[GPU_QUOTA_KEY]),
                    used=int(used.get(GPU_QUOTA_KEY, 0)),
                )
            except ValueError:
                log.warning(
                    "ResourceQuota %s has a GPU figure that is not a whole number", quota.metadata.name
                )
        return None


@contextlib.asynccontextmanager
async def open_kubernetes_backend(
    api_client: Any, namespace: str, policy: ValidationPolicy
) -> AsyncIterator[KubernetesBackend]:
    yield KubernetesBackend(api_client, namespace, policy)
