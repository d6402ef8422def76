"""TTSVoice objects: the voice library's records of truth on a cluster (``kubectl get ttsvoices``).

:class:`KubernetesVoices` is the gateway's voice store there: it creates, reads, lists and deletes the
namespace's TTSVoice objects. The workers never read them; the operator copies them into the
``tts_voices`` bucket (``tts_operator.voice_mirror``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client
from kubernetes.client import ApiException
from pydantic import ValidationError

from kube_access.client import ConflictError, NotFoundError
from kube_access.workflows import Workflows
from tts_api.voices import VOICE_PLURAL, TTSVoice, TTSVoiceMetadata, VoiceRecord, is_voice_name
from voice_library.store import VoiceExistsError, VoiceLibraryUnavailableError

log = logging.getLogger(__name__)
T = TypeVar("T")

UNREACHABLE = (
    "the voice library (the Kubernetes API) is not reachable: send the request again in a few seconds"
)
NOT_SERVED = (
    "the API server serves no TTSVoice objects: install the TTSVoice CRD "
    "(kubectl apply --server-side -f crds/ttsvoices.tts.indextts.io.yaml)"
)


def voice_body(record: VoiceRecord, namespace: str) -> dict[str, Any]:
    """The TTSVoice object for ``record``, as the API server takes it."""
    voice = TTSVoice(metadata=TTSVoiceMetadata(name=record.name, namespace=namespace), spec=record.spec)
    return voice.model_dump(mode="json", by_alias=True, exclude_none=True)


def record_of(body: dict[str, Any]) -> VoiceRecord | None:
    """The record a TTSVoice object holds; None (logged) for one that does not read as a voice."""
    try:
        return TTSVoice.model_validate(body).record()
    except ValidationError as exc:
        name = (body.get("metadata") or {}).get("name", "?")
        log.warning("skipping the TTSVoice %s: %s", name, exc.errors(include_url=False)[0]["msg"])
        return None


def voice_objects(api_client: client.ApiClient) -> Workflows:
    """TTSVoice objects through the API server, as plain bodies."""
    return Workflows(api_client, plural=VOICE_PLURAL)


class KubernetesVoices:
    """The TTSVoice objects of one namespace, as a voice store."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self._objects = voice_objects(api_client)
        self.namespace = namespace

    async def list(self) -> list[VoiceRecord]:
        try:
            items = await _reached(self._objects.list(self.namespace))
        except NotFoundError:
            raise VoiceLibraryUnavailableError(NOT_SERVED) from None
        found = [record_of(item) for item in items]
        return sorted((record for record in found if record is not None), key=lambda record: record.name)

    async def get(self, name: str) -> VoiceRecord | None:
        if not is_voice_name(name):
            return None
        body = await _reached(self._objects.get(self.namespace, name))
        return record_of(body) if body is not None else None

    async def create(self, record: VoiceRecord) -> VoiceRecord:
        try:
            created = await _reached(self._objects.create(self.namespace, voice_body(record, self.namespace)))
        except ConflictError:
            raise VoiceExistsError(record.name) from None
        except NotFoundError:
            raise VoiceLibraryUnavailableError(NOT_SERVED) from None
        return record_of(created) or record

    async def delete(self, name: str) -> bool:
        if not is_voice_name(name):
            return False
        return await _reached(self._objects.delete(self.namespace, name))


async def _reached(call: Awaitable[T]) -> T:
    """The call's answer; :class:`VoiceLibraryUnavailableError` when the API server is not reachable
    or answers with a server error."""
    try:
        return await call
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
    except ApiException as exc:
        if exc.status is None or exc.status >= 500:
            raise VoiceLibraryUnavailableError(UNREACHABLE) from exc
        raise
