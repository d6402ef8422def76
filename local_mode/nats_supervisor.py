"""Local mode's watch over its embedded nats-server: restarted when it dies; stopped while its disk
(or the shared folder's) is nearly full, or after its store failed a write, and started again once
there is space; its state, as the record store's health.

While a disk is full the server stays stopped, so that nothing moves: no worker takes a job whose
audio it could not write, no request is half stored. JetStream would anyway keep refusing a
stream's writes after one failed write to its files, even once space is free, until the server
restarts. The restart is on the same port and store, so every client reconnects and finds the
records and queued jobs as they were last written.

What to do is decided by :func:`decide` and said by :func:`problem`, from a :class:`ServerView`;
:class:`NatsSupervisor` only looks and acts.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nats_support.embedded_nats import EmbeddedNats

log = logging.getLogger(__name__)

# Below this much free space on a watched disk the server is stopped; it starts again at twice as
# much, so that it does not stop and start on every write at the edge.
MIN_FREE_BYTES = 16 * 1024 * 1024
POLL_SECONDS = 0.25
LISTEN_SECONDS = 10.0


class Action(enum.Enum):
    NONE = "none"
    RESTART = "restart"
    HOLD = "stopped until there is space"


@dataclass(frozen=True)
class ServerView:
    running: bool
    exit_code: int | None
    store_fault: str | None
    held: bool  # stopped by this supervisor for want of space
    free_bytes: int  # on the fullest watched disk
    fullest: str  # a folder on that disk


def lacks_space(view: ServerView, min_free_bytes: int = MIN_FREE_BYTES) -> bool:
    return view.free_bytes < (2 * min_free_bytes if view.held else min_free_bytes)


def decide(view: ServerView, min_free_bytes: int = MIN_FREE_BYTES) -> Action:
    if lacks_space(view, min_free_bytes):
        return Action.HOLD
    if view.held or view.store_fault is not None or not view.running:
        return Action.RESTART
    return Action.NONE


def problem(view: ServerView, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """What a request is told while the store cannot serve; None while it can."""
    if lacks_space(view, min_free_bytes):
        cause = f"; nats-server: {view.store_fault}" if view.store_fault else ""
        return (
            f"the workflow store is stopped: the disk of {view.fullest} is full "
            f"({view.free_bytes // 2**20} MiB free{cause}). Nothing was stored: free space there "
            f"(at least {2 * min_free_bytes // 2**20} MiB) or start the stack with --data-dir on a "
            "larger disk, then send the request again; the stack resumes by itself, queued work included"
        )
    if view.held or view.store_fault is not None:
        return (
            "the workflow store is restarting (space is free again): nothing was stored; send the "
            "request again in a few seconds"
        )
    if not view.running:
        return (
            "the workflow store (the embedded nats-server) stopped and is being restarted: nothing "
            "was stored; send the request again in a few seconds"
        )
    return None


def fullest(folders: Sequence[Path]) -> tuple[int, str]:
    """The least free space among the folders' disks, and that folder (a missing one counts as full)."""
    found: list[tuple[int, str]] = []
    for folder in folders:
        try:
            found.append((shutil.disk_usage(folder).free, str(folder)))
        except OSError:
            found.append((0, str(folder)))
    return min(found)


class NatsSupervisor:
    """Runs beside the stack: :meth:`run` until cancelled; :meth:`health` for the record store.
    ``watched``: the folders whose disks must have space (the store's, the shared folder's)."""

    def __init__(
        self,
        server: EmbeddedNats,
        *,
        watched: Sequence[Path] = (),
        min_free_bytes: int = MIN_FREE_BYTES,
    ) -> None:
        self._server = server
        self._watched = [server.store_dir, *watched]
        self._min_free = min_free_bytes
        self._held = False
        self._restored = True
        # Called once a restarted server serves: what a fresh server lacks (the in-memory worker
        # registry) is made again there.
        self.on_restart: Callable[[], Awaitable[None]] | None = None

    def view(self) -> ServerView:
        free, folder = fullest(self._watched)
        return ServerView(
            running=self._server.running,
            exit_code=self._server.exit_code,
            store_fault=self._server.store_fault,
            held=self._held,
            free_bytes=free,
            fullest=folder,
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
            if action is Action.HOLD and not self._held:
                log.error("%s", problem(view, self._min_free))
                log.error("stopping nats-server until the disk has space again: nothing moves meanwhile")
                self._held = True
                await asyncio.to_thread(self._server.stop)
            elif action is Action.RESTART:
                await self._restart(view)

    async def _restart(self, view: ServerView) -> None:
        if view.held or view.store_fault is not None:
            log.warning(
                "restarting nats-server: %s has %d MiB free again%s",
                view.fullest,
                view.free_bytes // 2**20,
                f" (after its failed write: {view.store_fault})" if view.store_fault else "",
            )
            await asyncio.to_thread(self._server.stop)
        else:
            log.error(
                "nats-server exited (%s); restarting it on %s with the same store",
                _how(view.exit_code),
                self._server.url,
            )
        self._held = False
        self._restored = False
        self._server.launch()  # in this (the main) thread: the child is stopped when its thread ends
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
