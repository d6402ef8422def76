"""The inference workers as the registry shows them: one entry per live worker slot.

Entries live in the ``tts_workers`` KV bucket and lapse when a worker stops refreshing its own, so
what this reads is the GPU lock as it really is. In a cluster, the namespace's ResourceQuota on
``requests.nvidia.com/gpu`` (the lock's capacity) comes from a quota reader.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import nats
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from gateway.monitoring import GpuQuota
from nats_support.jetstream import ensure_jetstream
from tts_api.registry import WorkerEntry, decode_entry

log = logging.getLogger(__name__)

QuotaReader = Callable[[], Awaitable[GpuQuota | None]]


async def no_quota() -> GpuQuota | None:
    return None


class WorkerDirectory:
    def __init__(self, bucket: KeyValue, quota: QuotaReader = no_quota) -> None:
        self._bucket = bucket
        self._quota = quota

    async def entries(self) -> list[WorkerEntry]:
        """Every registered worker; an unreadable entry is skipped (and logged)."""
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

    async def gpu_quota(self) -> GpuQuota | None:
        return await self._quota()


@contextlib.asynccontextmanager
async def open_worker_directory(
    nats_url: str, quota: QuotaReader = no_quota
) -> AsyncIterator[WorkerDirectory]:
    client = await nats.connect(nats_url, name="tts-gateway-registry")
    try:
        yield WorkerDirectory(await ensure_jetstream(client.jetstream()), quota)
    finally:
        await client.drain()
