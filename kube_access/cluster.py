"""The core objects around TTSWorkflows: Events about them, the namespace's ResourceQuotas (the GPU
lock's capacity) and the Lease that elects the operator's leader."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes import client

from kube_access.client import NotFoundError, call
from kube_access.workflows import MERGE_PATCH
from tts_api.constants import API_GROUP_VERSION, KIND


@dataclass(frozen=True)
class WorkflowObject:
    """Which TTSWorkflow an Event is about."""

    namespace: str
    name: str
    uid: str | None


@dataclass(frozen=True)
class QuotaFigures:
    """One ResourceQuota's hard limits (as enforced, else as asked) and use, as the server writes them."""

    name: str
    hard: dict[str, str]
    used: dict[str, str]


class Events:
    def __init__(self, api_client: client.ApiClient, *, component: str) -> None:
        self._core: Any = client.CoreV1Api(api_client)
        self._component = component

    async def post(
        self, about: WorkflowObject, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            # Named as kubectl names them (name.hex-time); some API servers do not honour generateName.
            metadata=client.V1ObjectMeta(name=f"{about.name}.{time.time_ns():x}", namespace=about.namespace),
            involved_object=client.V1ObjectReference(
                api_version=API_GROUP_VERSION,
                kind=KIND,
                name=about.name,
                namespace=about.namespace,
                uid=about.uid,
            ),
            reason=reason,
            message=message[:1024],
            type=kind,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
            source=client.V1EventSource(component=self._component),
            reporting_component=self._component,
        )
        await call(self._core.create_namespaced_event, about.namespace, event)


class ResourceQuotas:
    def __init__(self, api_client: client.ApiClient) -> None:
        self._core: Any = client.CoreV1Api(api_client)

    async def list(self, namespace: str) -> list[QuotaFigures]:
        listing = await call(self._core.list_namespaced_resource_quota, namespace)
        figures: list[QuotaFigures] = []
        for quota in listing.items:
            status = quota.status
            hard = (status.hard if status and status.hard else None) or quota.spec.hard or {}
            used = (status.used if status and status.used else None) or {}
            figures.append(QuotaFigures(name=quota.metadata.name, hard=dict(hard), used=dict(used)))
        return figures


class Leases:
    """``coordination.k8s.io/v1`` Leases; a write that loses a race raises ``ConflictError``."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api: Any = client.CoordinationV1Api(api_client)

    async def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease as JSON (its times as the server wrote them); None when there is none."""
        try:
            response = await call(self._api.read_namespaced_lease, name, namespace, _preload_content=False)
        except NotFoundError:
            return None
        body: dict[str, Any] = json.loads(response.data)
        return body

    async def create(self, namespace: str, body: dict[str, Any]) -> None:
        await call(self._api.create_namespaced_lease, namespace, body)

    async def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch; with ``metadata.resourceVersion`` in it, it fails if another wrote first."""
        await call(self._api.patch_namespaced_lease, name, namespace, patch, _content_type=MERGE_PATCH)
