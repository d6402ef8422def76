"""Where workflows live: a small protocol, and its Kubernetes implementation.

The runner and the events consumer only speak :class:`WorkflowStore`, so local mode can drive the
same core and runner over another store (a JetStream KV bucket). Only this module's
:class:`KubernetesStore` knows the Kubernetes API.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from tts_api.constants import API_GROUP, API_GROUP_VERSION, API_VERSION, KIND, PLURAL
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


def kube_api_client(api_url: str = "") -> Any:
    """A Kubernetes API client: in-cluster credentials, else KUBECONFIG; ``api_url``: that server,
    without credentials (kubectl proxy, an emulated API server)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if api_url:
        configuration.host = api_url.rstrip("/")
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


async def read_workflow_body(custom: Any, namespace: str | None, name: str) -> dict[str, Any] | None:
    """A TTSWorkflow as the API server holds it, read off the event loop; None when there is none.

    ``custom`` is a ``kubernetes.client.CustomObjectsApi``.
    """
    from kubernetes.client import ApiException

    try:
        body: dict[str, Any] = await asyncio.to_thread(
            custom.get_namespaced_custom_object, API_GROUP, API_VERSION, namespace, PLURAL, name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return body


class KubernetesStore:
    """TTSWorkflows through the Kubernetes API (the official client, run off the event loop)."""

    def __init__(self, api_client: Any, namespaces: list[str] | None = None) -> None:
        from kubernetes import client

        # Typed loosely: the client's generated signatures return ``object`` for custom objects.
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._core: Any = client.CoreV1Api(api_client)
        self._namespaces = namespaces or []

    @classmethod
    def connect(cls, api_url: str = "", namespaces: list[str] | None = None) -> KubernetesStore:
        return cls(kube_api_client(api_url), namespaces)

    async def get(self, namespace: str | None, name: str) -> Workflow | None:
        body = await read_workflow_body(self._custom, namespace, name)
        return workflow_from_body(body) if body is not None else None

    async def list(self) -> list[Workflow]:
        listing: dict[str, Any]
        bodies: list[Any] = []
        if self._namespaces:
            for namespace in self._namespaces:
                listing = await asyncio.to_thread(
                    self._custom.list_namespaced_custom_object, API_GROUP, API_VERSION, namespace, PLURAL
                )
                bodies.extend(listing.get("items", []))
        else:
            listing = await asyncio.to_thread(
                self._custom.list_cluster_custom_object, API_GROUP, API_VERSION, PLURAL
            )
            bodies = listing.get("items", [])
        return [workflow_from_body(body) for body in bodies]

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        from kubernetes.client import ApiException

        try:
            await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object_status,
                API_GROUP,
                API_VERSION,
                ref.namespace or "default",
                PLURAL,
                ref.name,
                {"status": patch},
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 404:
                raise WorkflowGoneError(f"{ref.namespace}/{ref.name}") from None
            raise

    async def delete(self, ref: WorkflowRef) -> None:
        from kubernetes.client import ApiException

        try:
            await asyncio.to_thread(
                self._custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                ref.namespace or "default",
                PLURAL,
                ref.name,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def post_event(
        self, ref: WorkflowRef, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        from kubernetes import client

        now = datetime.now(UTC)
        event = client.CoreV1Event(
            # Named as kubectl names them (name.hex-time); some API servers do not honour generateName.
            metadata=client.V1ObjectMeta(name=f"{ref.name}.{time.time_ns():x}", namespace=ref.namespace),
            involved_object=client.V1ObjectReference(
                api_version=API_GROUP_VERSION,
                kind=KIND,
                name=ref.name,
                namespace=ref.namespace,
                uid=None if ref.uid.startswith("nouid-") else ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type=kind,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=EVENT_SOURCE),
            reporting_component=EVENT_SOURCE,
        )
        await asyncio.to_thread(self._core.create_namespaced_event, ref.namespace or "default", event)
