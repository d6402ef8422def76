"""Local mode's watch over its embedded nats-server: restarted when it dies, and when its store
failed a write (a full disk) once space is back; its state, as the record store's health.

JetStream keeps refusing a stream's writes after a failed write to its files, even once space is
free, until the server restarts; the restart is on the same port and store, so every client
reconnects and finds the records and queued jobs as they were last written. What to do is decided
by :func:`decide` and said by :func:`problem`, from a :class:`ServerView`; :class:`NatsSupervisor`
only looks and acts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats_support.embedded_nats import EmbeddedNats

log = logging.getLogger(__name__)

# The free space below which a store that failed a write is left stopped: restarting onto a disk
# that is still full would fail the next write at once.
MIN_FREE_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.25
LISTEN_SECONDS = 10.0


class Action(enum.Enum):
    NONE = "none"
    RESTART = "restart"
    WAIT_FOR_SPACE = "wait for space"


@dataclass(frozen=True)
class ServerView:
    running: bool
    exit_code: int | None
    store_fault: str | None
    free_bytes: int
    store_dir: str


def decide(view: ServerView, min_free_bytes: int = MIN_FREE_BYTES) -> Action:
    if not view.running:
        return Action.RESTART
    if view.store_fault is not None:
        return Action.RESTART if view.free_bytes >= min_free_bytes else Action.WAIT_FOR_SPACE
    return Action.NONE


def problem(view: ServerView, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """What a request is told while the store cannot serve; None while it can."""
    if not view.running:
        return (
            "the workflow store (the embedded nats-server) stopped and is being restarted: nothing "
            "was stored; send the request again in a few seconds"
        )
    if view.store_fault is None:
        return None
    if view.free_bytes < min_free_bytes:
        return (
            f"the workflow store cannot write: the disk of {view.store_dir} is full "
            f"({view.free_bytes // 2**20} MiB free; nats-server: {view.store_fault}). Nothing was "
            f"stored: free space there (at least {min_free_bytes // 2**20} MiB) or start the stack "
            "with --data-dir on a larger disk; it resumes by itself, queued work included"
        )
    return (
        "the workflow store is restarting after a failed write (space is free again): nothing was "
        "stored; send the request again in a few seconds"
    )


def free_bytes(path: str) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


class NatsSupervisor:
    """Runs beside the stack: :meth:`run` until cancelled; :meth:`health` for the record store."""

    def __init__(self, server: EmbeddedNats, *, min_free_bytes: int = MIN_FREE_BYTES) -> None:
        self._server = server
        self._min_free = min_free_bytes
        self._said_full = False
        self._restored = True
        self.restarts = 0
        # Called once a restarted server serves: what a fresh server lacks (the in-memory worker
        # registry) is made again there.
        self.on_restart: Callable[[], Awaitable[None]] | None = None

    def view(self) -> ServerView:
        store = str(self._server.store_dir)
        fault = self._server.store_fault
        return ServerView(
            running=self._server.running,
            exit_code=self._server.exit_code,
            store_fault=fault,
            free_bytes=free_bytes(store) if fault is not None else 0,
            store_dir=store,
        )

    def health(self) -> str | None:
        found = problem(self.view(), self._min_free)
        if found is None and not self._restored:
            return (
                "the workflow store is restarting (its nats-server is back, its buckets are being "
                "checked): nothing was stored; send the request again in a few seconds"
            )
        return found

    async def run(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if not self._restored and self._server.running:
                await self._restore()
                continue
            view = self.view()
            action = decide(view, self._min_free)
            if action is Action.WAIT_FOR_SPACE and not self._said_full:
                log.error("%s", problem(view, self._min_free))
                self._said_full = True
            elif action is Action.RESTART:
                await self._restart(view)

    async def _restart(self, view: ServerView) -> None:
        if view.running:
            log.warning(
                "restarting nats-server: space is free again in %s after its failed write (%s)",
                view.store_dir,
                view.store_fault,
            )
            await asyncio.to_thread(self._server.stop)
        else:
            log.error(
                "nats-server exited (%s); restarting it on %s with the same store",
                _how(view.exit_code),
                self._server.url,
            )
        self._said_full = False
        self._restored = False
        self.restarts += 1
        self._server.launch()  # in this (the main) thread: the child outlives no thread but it
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LISTEN_SECONDS
        while loop.time() < deadline and self._server.running:
            if await asyncio.to_thread(self._server.listening):
                log.warning("nats-server is back on %s; its clients reconnect", self._server.url)
                await self._restore()
                return
            await asyncio.sleep(0.05)
        log.error("the restarted nats-server did not serve (%s); trying again", _how(self._server.exit_code))

    async def _restore(self) -> None:
        try:
            if self.on_restart is not None:
                await self.on_restart()
        except Exception as exc:
            log.warning("restoring the restarted nats-server's buckets failed (%r); trying again", exc)
            return
        self._restored = True


def _how(exit_code: int | None) -> str:
    if exit_code is None:
        return "still running"
    return f"killed by signal {-exit_code}" if exit_code < 0 else f"exit code {exit_code}"
