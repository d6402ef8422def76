"""The inference workers as the registry shows them: one entry per live worker slot.

Entries live in the ``tts_workers`` KV bucket and lapse when a worker stops refreshing its own, so
what this reads is the GPU lock as it really is. In a cluster, the namespace's ResourceQuota on
``requests.nvidia.com/gpu`` (the lock's capacity) comes from a quota reader.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import nats
import nats.errors
from nats.aio.client import Client
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from gateway.backend import BackendUnavailableError
from gateway.monitoring import GpuQuota
from nats_support.jetstream import ensure_jetstream
from tts_api.nats_names import JOBS_STREAM, workers_consumer
from tts_api.registry import WorkerEntry, decode_entry

log = logging.getLogger(__name__)

QuotaReader = Callable[[], Awaitable[GpuQuota | None]]


async def no_quota() -> GpuQuota | None:
    return None


UNREACHABLE = (
    "the worker registry (NATS) is not reachable: send the request again in a few seconds, "
    "and see the gateway's log if it persists"
)


UNREACHABLE_ERRORS = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
)


class WorkerDirectory:
    def __init__(self, bucket: KeyValue, quota: QuotaReader = no_quota, client: Client | None = None) -> None:
        self._bucket = bucket
        self._quota = quota
        self._client = client

    async def entries(self) -> list[WorkerEntry]:
        """Every registered worker; an unreadable entry is skipped (and logged). Raises
        :class:`BackendUnavailableError` at once while NATS is unreachable."""
        if self._client is not None and not self._client.is_connected:
            raise BackendUnavailableError(UNREACHABLE)
        try:
            return await self._entries()
        except UNREACHABLE_ERRORS as exc:
            raise BackendUnavailableError(UNREACHABLE) from exc

    async def _entries(self) -> list[WorkerEntry]:
        try:
            keys = await self._bucket.keys()
        except NoKeysError:
            return []
        found: list[WorkerEntry] = []
        for key in keys:
            try:
                entry = await self._bucket.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                continue  # it lapsed meanwhile
            if entry.value is None:
                continue
            try:
                found.append(decode_entry(entry.value))
            except ValueError as exc:
                log.warning("skipping an unreadable worker registry entry %s: %s", key, exc)
        return found

    @property
    def client(self) -> Client:
        """The gateway's NATS connection (streamed speech is received on it too)."""
        if self._client is None:
            raise BackendUnavailableError(UNREACHABLE)
        return self._client

    async def gpu_quota(self) -> GpuQuota | None:
        return await self._quota()

    async def queued(self, models: Iterable[str]) -> dict[str, int]:
        """Per model, the jobs waiting on its workers' consumer (taken by none yet); a model whose
        consumer does not exist yet has none."""
        if self._client is None:
            return {}
        js = self._client.jetstream()
        waiting: dict[str, int] = {}
        for model in models:
            try:
                waiting[model] = (await js.consumer_info(JOBS_STREAM, workers_consumer(model))).num_pending
            except NotFoundError:
                continue
            except UNREACHABLE_ERRORS as exc:
                raise BackendUnavailableError(UNREACHABLE) from exc
        return waiting


@contextlib.asynccontextmanager
async def open_worker_directory(
    nats_url: str, quota: QuotaReader = no_quota
) -> AsyncIterator[WorkerDirectory]:
    client = await nats.connect(
        nats_url, name="tts-gateway-registry", max_reconnect_attempts=-1, reconnect_time_wait=0.5
    )
    try:
        yield WorkerDirectory(await ensure_jetstream(client.jetstream()), quota, client)
    finally:
        if client.is_connected:
            await client.drain()
        else:  # NATS is gone: a drain would raise
            await client.close()
