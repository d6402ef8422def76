"""Custom objects of this API group (TTSWorkflow by default, TTSVoice too): read, list, watch, create,
patch the status of, delete."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from kubernetes import client, watch

from kube_access.client import NotFoundError, call
from tts_api.constants import API_GROUP, API_VERSION, PLURAL

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class WorkflowPage:
    items: list[dict[str, Any]]
    resource_version: str
    """The snapshot's version: a watch from it sees every change made since."""


class Workflows:
    """TTSWorkflows (or another kind of this group: ``plural``) through the API server, as plain
    bodies (dicts as the server sends them)."""

    def __init__(self, api_client: client.ApiClient, plural: str = PLURAL) -> None:
        # Typed loosely: the client's generated signatures return ``object`` for custom objects.
        self._custom: Any = client.CustomObjectsApi(api_client)
        self._plural = plural

    def _listing(self, namespace: str | None) -> tuple[Any, ...]:
        """The list call and its leading arguments: of ``namespace``, or of every namespace (None)."""
        if namespace is None:
            return (self._custom.list_cluster_custom_object, API_GROUP, API_VERSION, self._plural)
        return (self._custom.list_namespaced_custom_object, API_GROUP, API_VERSION, namespace, self._plural)

    async def served(self) -> bool:
        """Whether the API server serves the TTSWorkflow resource (discovery: any user may ask)."""
        try:
            found: Any = await call(self._custom.get_api_resources, API_GROUP, API_VERSION)
        except NotFoundError:
            return False
        return any(resource.name == self._plural for resource in found.resources or [])

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The workflow as the API server holds it; None when there is none."""
        try:
            body: dict[str, Any] = await call(
                self._custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                self._plural,
                name,
            )
        except NotFoundError:
            return None
        return body

    async def list(self, namespace: str | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """The workflows of ``namespace``, or of every namespace when it is None."""
        options: dict[str, Any] = {"limit": limit} if limit is not None else {}
        listing: dict[str, Any] = await call(*self._listing(namespace), **options)
        items: list[dict[str, Any]] = listing.get("items", [])
        return items

    async def pages(self, namespace: str | None, *, page_size: int = 500) -> AsyncIterator[WorkflowPage]:
        """Every object of ``namespace`` (of all namespaces when it is None), ``page_size`` at a time
        (the list's ``continue`` token), so that a reader holds one page, not every object at once.
        The pages are one consistent snapshot, at the first page's ``resourceVersion``."""
        token: str | None = None
        version = ""
        while True:
            options: dict[str, Any] = {"limit": page_size}
            if token:
                options["_continue"] = token
            listing: dict[str, Any] = await call(*self._listing(namespace), **options)
            metadata = listing.get("metadata") or {}
            version = version or metadata.get("resourceVersion", "")
            yield WorkflowPage(listing.get("items", []), version)
            token = metadata.get("continue")
            if not token:
                return

    async def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """The created object as the server answers it; :class:`ConflictError` if the name is taken."""
        created: Any = await call(
            self._custom.create_namespaced_custom_object,
            API_GROUP,
            API_VERSION,
            namespace,
            self._plural,
            body,
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
            self._plural,
            name,
            {"status": patch},
            _content_type=MERGE_PATCH,
        )

    async def delete(self, namespace: str, name: str) -> bool:
        """Delete the workflow; False when there was none."""
        try:
            await call(
                self._custom.delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                namespace,
                self._plural,
                name,
            )
        except NotFoundError:
            return False
        return True

    async def watch(
        self,
        namespace: str | None,
        name: str | None,
        *,
        resource_version: str | None,
        timeout_seconds: float,
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """The changes of one object (every object of ``namespace``, or of all namespaces when it is
        None, when ``name`` is None) after
        ``resource_version``, as (``ADDED``/``MODIFIED``/``DELETED``, body), until the server ends
        the watch (at most ``timeout_seconds``) or the caller stops reading. Without a version, the
        first events are the objects as they are."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, dict[str, Any]] | BaseException | None] = asyncio.Queue()
        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        stopped = threading.Event()
        options: dict[str, Any] = {
            "timeout_seconds": max(1, round(timeout_seconds)),
            # The client gives up too, should the server never end the stream.
            "_request_timeout": timeout_seconds + 10,
        }
        if name is not None:
            options["field_selector"] = f"metadata.name={name}"
        if resource_version:
            options["resource_version"] = resource_version

        listing = self._listing(namespace)

        def stream() -> None:
            try:
                for event in watcher.stream(*listing, **options):  # type: ignore[no-untyped-call]
                    if stopped.is_set():
                        break
                    loop.call_soon_threadsafe(events.put_nowait, (event["type"], event["object"]))
                loop.call_soon_threadsafe(events.put_nowait, None)
            except BaseException as exc:  # handed to the reader
                if not stopped.is_set():
                    loop.call_soon_threadsafe(events.put_nowait, exc)

        # A thread of its own: a watch blocks for as long as it lasts, and the event loop's shared
        # pool would run dry with one per waiting client.
        threading.Thread(
            target=stream, name=f"watch-{name or namespace or self._plural}", daemon=True
        ).start()
        ends_at = loop.time() + timeout_seconds
        try:
            while True:
                try:  # the server may not honour the watch's timeout (an emulator): the reader does
                    item = await asyncio.wait_for(events.get(), max(0.0, ends_at - loop.time()))
                except TimeoutError:
                    return
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                kind, body = item
                # An API server that ignores the field selector (an emulator) sends the others too.
                if isinstance(body, dict) and (
                    name is None or (body.get("metadata") or {}).get("name") == name
                ):
                    yield kind, body
        finally:
            stopped.set()
            watcher.stop()  # type: ignore[no-untyped-call]
