"""Where workflows live: a small protocol, and its Kubernetes implementation.

The runner and the events consumer only speak :class:`WorkflowStore`, so local mode can drive the
same core and runner over another store (a JetStream KV bucket). Only this module's
:class:`KubernetesStore` touches the Kubernetes API, through :mod:`kube_access`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import kube_access.client
from kube_access.client import NotFoundError
from kube_access.cluster import Events, WorkflowObject
from kube_access.workflows import Workflows
from tts_api.messages import WorkflowRef
from tts_api.resource import TTSWorkflowStatus
from tts_operator.reconcile import Workflow

log = logging.getLogger(__name__)

EVENT_SOURCE = "indextts-operator"


class WorkflowGoneError(Exception):
    """The workflow no longer exists (deleted meanwhile)."""


class WorkflowStore(Protocol):
    """What the runner needs from the record of truth."""

    async def get(self, namespace: str | None, name: str) -> Workflow | None: ...

    async def list(self) -> list[Workflow]: ...

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        """Apply a JSON merge patch (RFC 7386) to ``status``; raise :class:`WorkflowGoneError`."""

    async def delete(self, ref: WorkflowRef) -> None: ...

    async def post_event(
        self, ref: WorkflowRef, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None: ...


def workflow_uid(metadata: Mapping[str, Any]) -> str:
    """The object's uid; an API server that assigns none (an emulator) gets a stable stand-in."""
    uid = metadata.get("uid")
    if isinstance(uid, str) and uid:
        return uid
    key = f"{metadata.get('namespace') or ''}/{metadata.get('name')}"
    return "nouid-" + hashlib.sha256(key.encode()).hexdigest()[:20]


def workflow_from_body(body: Mapping[str, Any]) -> Workflow:
    """The core's view of a resource body (kopf's ``body`` or an API response)."""
    metadata = body.get("metadata") or {}
    generation = metadata.get("generation")
    return Workflow(
        ref=WorkflowRef(
            uid=workflow_uid(metadata), name=metadata["name"], namespace=metadata.get("namespace")
        ),
        spec=dict(body.get("spec") or {}),
        status=TTSWorkflowStatus.from_k8s(dict(body.get("status") or {})),
        generation=generation if isinstance(generation, int) else None,
    )


class KubernetesStore:
    """TTSWorkflows through the Kubernetes API (:mod:`kube_access`)."""

    def __init__(self, api_client: Any, namespaces: list[str] | None = None) -> None:
        self.api_client = api_client
        self._workflows = Workflows(api_client)
        self._events = Events(api_client, component=EVENT_SOURCE)
        self._namespaces = namespaces or []

    @classmethod
    def connect(cls, api_url: str = "", namespaces: list[str] | None = None) -> KubernetesStore:
        return cls(kube_access.client.api_client(api_url), namespaces)

    async def resource_served(self) -> bool:
        """Whether the API server serves TTSWorkflows (the CRD is installed and established)."""
        return await self._workflows.served()

    async def get(self, namespace: str | None, name: str) -> Workflow | None:
        body = await self._workflows.get(namespace or "default", name)
        return workflow_from_body(body) if body is not None else None

    async def list(self) -> list[Workflow]:
        bodies: list[dict[str, Any]] = []
        namespaces: list[str | None] = [*self._namespaces] or [None]
        for namespace in namespaces:
            bodies.extend(await self._workflows.list(namespace))
        return [workflow_from_body(body) for body in bodies]

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        try:
            await self._workflows.patch_status(ref.namespace or "default", ref.name, patch)
        except NotFoundError:
            raise WorkflowGoneError(f"{ref.namespace}/{ref.name}") from None

    async def delete(self, ref: WorkflowRef) -> None:
        await self._workflows.delete(ref.namespace or "default", ref.name)

    async def post_event(
        self, ref: WorkflowRef, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        about = WorkflowObject(
            namespace=ref.namespace or "default",
            name=ref.name,
            uid=None if ref.uid.startswith("nouid-") else ref.uid,
        )
        await self._events.post(about, kind, reason, message)
