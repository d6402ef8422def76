"""Which models the live inference workers serve, as the worker registry shows them.

A watch on the ``tts_workers`` bucket delivers every worker's entry each time the worker refreshes it
(every heartbeat). The bucket drops an entry its worker stopped refreshing without a word to its
watchers, so an entry counts as live for ``WORKER_ENTRY_TTL_SECONDS`` after it was last received;
a worker that stops deletes its entry, and the watch says so at once. A worker whose model failed
to load serves nothing; one that is loading or stopping still counts (it will take, or hand back,
the job). The decisions read :meth:`ServedModels.models`: None while the watch has not delivered
the registry yet, is broken or NATS is away, so that no workflow is judged on a view that is not
there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from tts_api.registry import WORKER_ENTRY_TTL_SECONDS, ModelState, decode_entry

log = logging.getLogger(__name__)

# How long after a broken watch it is opened again.
REWATCH_SECONDS = 2.0


class ServedModels:
    def __init__(
        self,
        bucket: KeyValue,
        *,
        connected: Callable[[], bool] = lambda: True,
        ttl_seconds: float = WORKER_ENTRY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``connected`` says whether NATS is reachable now: while it is not, entries cannot arrive,
        and their age says nothing of their workers."""
        self._bucket = bucket
        self._connected = connected
        self._ttl = ttl_seconds
        self._clock = clock
        # Registry key → (the model its worker serves, or None for one that serves none; when received).
        self._seen: dict[str, tuple[str | None, float]] = {}
        self._current = False
        self.loaded = asyncio.Event()

    def models(self) -> frozenset[str] | None:
        """The models some live worker serves; None while that is not known."""
        if not self._current or not self._connected():
            return None
        fresh = self._clock() - self._ttl
        return frozenset(model for model, at in self._seen.values() if model is not None and at > fresh)

    async def run(self) -> None:
        """Until cancelled: follow the registry, opening the watch again whenever it breaks."""
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the worker registry watch broke (%r); opening it again", exc)
            self._current = False
            await asyncio.sleep(REWATCH_SECONDS)

    async def _follow(self) -> None:
        watcher = await self._bucket.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the registry as it was when the watch opened has been read
                    self._current = True
                    self.loaded.set()
                    continue
                if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                    self._seen.pop(entry.key, None)
                    continue
                try:
                    worker = decode_entry(entry.value)
                except ValueError as exc:
                    log.warning("skipping an unreadable worker registry entry %s: %s", entry.key, exc)
                    continue
                serves = worker.model or None
                if worker.model_state is ModelState.ERROR:
                    serves = None
                self._seen[entry.key] = (serves, self._clock())
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
