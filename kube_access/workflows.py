"""TTSWorkflow objects: read, list, create, patch the status of, delete."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from kube_access.client import NotFoundError, call
from tts_api.constants import API_GROUP, API_VERSION, PLURAL

MERGE_PATCH = "application/merge-patch+json"


class Workflows:
    """TTSWorkflows through the API server, as plain bodies (dicts as the server sends them)."""

    def __init__(self, api_client: client.ApiClient) -> None:
        # Typed loosely: the client's generated signatures return ``object`` for custom objects.
        self._custom: Any = client.CustomObjectsApi(api_client)

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The workflow as the API server holds it; None when there is none."""
        try:
            body: dict[str, Any] = await call(
                self._custom.get_namespaced_custom_object, API_GROUP, API_VERSION, namespace, PLURAL, name
            )
        except NotFoundError:
            return None
        return body

    async def list(self, namespace: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The workflows of ``namespace``, or of every namespace when it is None."""
        options: dict[str, Any] = {"limit": limit} if limit is not None else {}
        listing: dict[str, Any]
        if namespace is None:
            listing = await call(
                self._custom.list_cluster_custom_object, API_GROUP, API_VERSION, PLURAL, **options
            )
        else:
            listing = await call(
                self._custom.list_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                PLURAL,
                **options,
            )
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """The created object as the server answers it; :class:`ConflictError` if the name is taken."""
        created: Any = await call(
            self._custom.create_namespaced_custom_object, API_GROUP, API_VERSION, namespace, PLURAL, body
        )
        # A real API server answers with the object (uid, creationTimestamp); an emulator may not.
        return created if isinstance(created, dict) else body

    async def patch_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        """A JSON merge patch (RFC 7386) of ``status``; :class:`NotFoundError` if it is gone."""
        await call(
            self._custom.patch_namespaced_custom_object_status,
            API_GROUP,
            API_VERSION,
            namespace,
            PLURAL,
            name,
            {"status": patch},
            _content_type=MERGE_PATCH,
        )

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the workflow; False when there was none."""
        try:
            await call(
                self._custom.delete_namespaced_custom_object, API_GROUP, API_VERSION, namespace, PLURAL, name
            )
        except NotFoundError:
            return False
        return True
