"""Where voice records are kept: the :class:`VoiceStore` interface, and the ``tts_voices`` bucket that
workers read in both modes (and the gateway writes in local mode).

On a cluster the records of truth are TTSVoice objects (``kube_access.voices``) and the operator copies
them into the bucket; here is only the bucket.
"""

from __future__ import annotations

import logging
from typing import Protocol

import nats.errors
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError
from nats.js.kv import KeyValue

from tts_api.voices import VoiceRecord, is_voice_name

log = logging.getLogger(__name__)

NATS_FAILURES = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
)


class VoiceExistsError(Exception):
    """A voice of that name exists already."""


class VoiceLibraryUnavailableError(Exception):
    """The store cannot be reached now; the message says so (a 503: try again)."""


class VoiceStore(Protocol):
    async def list(self) -> list[VoiceRecord]: ...

    async def get(self, name: str) -> VoiceRecord | None: ...

    async def create(self, record: VoiceRecord) -> VoiceRecord:
        """Store a new voice; :class:`VoiceExistsError` when the name is taken."""
        ...

    async def delete(self, name: str) -> bool:
        """Remove a voice; False when there was none."""
        ...


UNREACHABLE = "the voice library (NATS) is not reachable: send the request again in a few seconds"


def voice_key(namespace: str, name: str) -> str:
    """A voice's key in the bucket: voices are a namespace's, as TTSVoice objects are."""
    return f"{namespace}.{name}"


class BucketVoices:
    """The voice records of one namespace in the ``tts_voices`` bucket, one key per voice
    (``<namespace>.<name>``; local mode's namespace is ``local``)."""

    def __init__(self, bucket: KeyValue, namespace: str) -> None:
        self._bucket = bucket
        self.namespace = namespace

    async def names(self) -> list[str]:
        try:
            keys = await self._bucket.keys()
        except NoKeysError:
            return []
        except NATS_FAILURES as exc:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
        prefix = f"{self.namespace}."
        return sorted(key.removeprefix(prefix) for key in keys if key.startswith(prefix))

    async def list(self) -> list[VoiceRecord]:
        found = [await self.get(name) for name in await self.names()]
        return [record for record in found if record is not None]

    async def get(self, name: str) -> VoiceRecord | None:
        if not is_voice_name(name):
            return None
        try:
            entry = await self._bucket.get(voice_key(self.namespace, name))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except NATS_FAILURES as exc:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
        if not entry.value:
            return None
        try:
            return VoiceRecord.decode(entry.value)
        except ValueError as exc:
            log.warning("skipping the unreadable voice record %s: %s", name, exc)
            return None

    async def create(self, record: VoiceRecord) -> VoiceRecord:
        try:
            await self._bucket.create(voice_key(self.namespace, record.name), record.encode())
        except KeyWrongLastSequenceError:
            raise VoiceExistsError(record.name) from None
        except NATS_FAILURES as exc:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
        return record

    async def put(self, record: VoiceRecord) -> None:
        """Write the record whatever was there (the operator's copy of a TTSVoice object)."""
        try:
            await self._bucket.put(voice_key(self.namespace, record.name), record.encode())
        except NATS_FAILURES as exc:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc

    async def delete(self, name: str) -> bool:
        if await self.get(name) is None:
            return False
        try:
            await self._bucket.delete(voice_key(self.namespace, name))
        except NATS_FAILURES as exc:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
        return True
