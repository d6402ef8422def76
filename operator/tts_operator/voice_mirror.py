"""The operator's copy of the voice library: the ``tts_voices`` bucket kept equal to the TTSVoice
objects of the namespaces it watches, so that workers (which have no rights on the API server) find a
voice by name.

One task per namespace (one for all when it watches all): list every TTSVoice, write each record the
bucket lacks or holds otherwise, remove the bucket's voices of that namespace that are no longer
objects, then follow the watch from the listing's version. A watch that fails starts over with a new
listing, so a voice created or deleted while the operator was away is caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.js.kv import KeyValue

from kube_access.voices import record_of, voice_objects
from kube_access.workflows import Workflows
from nats_support.tasks import cancel_and_wait
from tts_api.voices import VoiceRecord
from voice_library.store import BucketVoices

log = logging.getLogger(__name__)

# A watch is opened again after this long (the API server ends it), or after a failure.
WATCH_SECONDS = 300.0
RETRY_SECONDS = 2.0


def _namespace(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("namespace") or "default")


class VoiceMirror:
    def __init__(self, objects: Workflows, bucket: KeyValue, namespaces: list[str]) -> None:
        self._objects = objects
        self._bucket = bucket
        self._scopes: list[str | None] = [*namespaces] or [None]
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def of(cls, api_client: Any, bucket: KeyValue, namespaces: list[str]) -> VoiceMirror:
        return cls(voice_objects(api_client), bucket, namespaces)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._follow(scope), name=f"tts-voice-mirror-{scope or 'all'}")
            for scope in self._scopes
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []

    def _voices(self, namespace: str) -> BucketVoices:
        return BucketVoices(self._bucket, namespace)

    async def _follow(self, scope: str | None) -> None:
        while True:
            try:
                version = await self._relist(scope)
                while True:
                    version = await self._watch_from(scope, version)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("mirroring the TTSVoices of %s failed (%s); listing them again", scope or "all", exc)
            await asyncio.sleep(RETRY_SECONDS)

    async def _relist(self, scope: str | None) -> str:
        version = ""
        seen: dict[str, set[str]] = {}
        async for page in self._objects.pages(scope):
            version = page.resource_version
            for body in page.items:
                record = record_of(body)
                if record is not None:
                    namespace = _namespace(body)
                    seen.setdefault(namespace, set()).add(record.name)
                    await self._write(namespace, record)
        for namespace in await self._bucket_namespaces(scope):
            voices = self._voices(namespace)
            for name in set(await voices.names()) - seen.get(namespace, set()):
                log.info(
                    "voice %s/%s is no longer a TTSVoice: removed from the workers' library", namespace, name
                )
                await voices.delete(name)
        return version

    async def _bucket_namespaces(self, scope: str | None) -> set[str]:
        if scope is not None:
            return {scope}
        with contextlib.suppress(Exception):  # an empty bucket has no keys
            return {key.split(".", 1)[0] for key in await self._bucket.keys() if "." in key}
        return set()

    async def _write(self, namespace: str, record: VoiceRecord) -> None:
        voices = self._voices(namespace)
        if await voices.get(record.name) != record:
            await voices.put(record)
            log.info("voice %s/%s mirrored for the workers", namespace, record.name)

    async def _watch_from(self, scope: str | None, version: str) -> str:
        async for kind, body in self._objects.watch(
            scope, None, resource_version=version, timeout_seconds=WATCH_SECONDS
        ):
            version = (body.get("metadata") or {}).get("resourceVersion") or version
            namespace = _namespace(body)
            if kind == "DELETED":
                name = (body.get("metadata") or {}).get("name")
                if name and await self._voices(namespace).delete(name):
                    log.info("voice %s/%s deleted: removed from the workers' library", namespace, name)
            elif kind in ("ADDED", "MODIFIED"):
                record = record_of(body)
                if record is not None:
                    await self._write(namespace, record)
        return version
