"""Local mode's operator: the operator's own runner and reconcile core, over the KV record store.

In a cluster, kopf watches TTSWorkflows and calls the runner; here :class:`LocalDriver` watches the
records bucket and calls the same runner with the same inputs (created, resumed, deleted, tick), and
:class:`LocalOperatorStore` gives the runner the store it expects. No decision is made here: every
one comes from :mod:`tts_operator.reconcile`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE

from gateway.backend import BackendUnavailableError
from local_mode.record_store import (
    MAX_WRITE_RETRIES,
    REWATCH_SECONDS,
    LocalWorkflowStore,
    RecordConflictError,
)
from local_mode.tick_schedule import TickSchedule
from nats_support.tasks import cancel_and_wait
from tts_api.messages import WorkflowRef
from tts_operator.reconcile import Created, Deleted, Input, Resumed, Tick, Workflow
from tts_operator.runner import Runner
from tts_operator.store import WorkflowGoneError, workflow_from_body

log = logging.getLogger(__name__)


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``patch`` applied to ``target`` (null deletes a key; lists are replaced whole)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


class LocalOperatorStore:
    """The runner's :class:`~tts_operator.store.WorkflowStore`, over local mode's records."""

    def __init__(
        self,
        records: LocalWorkflowStore,
        *,
        on_deleted: Callable[[Workflow], Awaitable[None]] | None = None,
    ) -> None:
        self._records = records
        self._on_deleted = on_deleted  # queues the deletion of its audio (tts_operator.output_cleanup)

    async def get(self, namespace: str | None, name: str) -> Workflow | None:
        found = await self._records.read_body(name)
        return workflow_from_body(found[0]) if found else None

    async def list(self) -> list[Workflow]:
        return [workflow_from_body(body) for body in await self._records.bodies()]

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        for _ in range(MAX_WRITE_RETRIES):
            found = await self._records.read_body(ref.name)
            if found is None or found[0].get("metadata", {}).get("uid") != ref.uid:
                raise WorkflowGoneError(f"workflow {ref.name} no longer exists")
            body, revision = found
            body["status"] = apply_merge_patch(body.get("status") or {}, patch)
            try:
                await self._records.write_body(ref.name, body, revision=revision)
                return
            except RecordConflictError:
                continue  # the gateway marked it for deletion meanwhile: apply the patch again
        raise RecordConflictError(f"workflow {ref.name} kept changing while its status was written")

    async def delete(self, ref: WorkflowRef) -> None:
        found = await self._records.read_body(ref.name)
        if found is not None and found[0].get("metadata", {}).get("uid") == ref.uid:
            await self._records.purge(ref.name)
            await self.deleted(workflow_from_body(found[0]))

    async def deleted(self, workflow: Workflow) -> None:
        """A workflow is gone: its audio goes too; a failure is logged (the record is gone anyway)."""
        if self._on_deleted is None:
            return
        try:
            await self._on_deleted(workflow)
        except Exception:
            log.exception("could not queue the deletion of %s's audio; it stays", workflow.ref.name)

    async def post_event(
        self, ref: WorkflowRef, kind: Literal["Normal", "Warning"], reason: str, message: str
    ) -> None:
        """No API server to hold Events: they go to the log, where `make dev` shows them."""
        level = logging.WARNING if kind == "Warning" else logging.INFO
        log.log(level, "%s %s: %s", ref.name, reason, message, extra={"workflow_name": ref.name})


class LocalDriver:
    """Watches the records and feeds the runner, as kopf's handlers do in a cluster."""

    def __init__(
        self,
        records: LocalWorkflowStore,
        store: LocalOperatorStore,
        runner: Runner,
        *,
        tick_seconds: float = 5.0,
    ) -> None:
        self._records = records
        self._store = store
        self._runner = runner
        self._tick_seconds = tick_seconds
        self._schedule = TickSchedule()

    async def run(self) -> None:
        """Until cancelled: follow the bucket and tick every workflow. A watch that breaks (NATS
        restarted, or was unreachable) is opened again; its first values are then handled as
        changes, not as a resume: this process still holds what it was doing."""
        ticking = asyncio.create_task(self._tick_forever(), name="local-operator-ticks")
        resuming = True  # the first watch delivers every record as it is: the operator's resume
        try:
            while True:
                try:
                    await self._follow(resuming=resuming)
                    resuming = False
                except BackendUnavailableError as exc:
                    log.warning("the records watch cannot open now (%s); trying again", exc)
                except Exception as exc:
                    log.warning("the records watch broke (%r); opening it again", exc)
                await asyncio.sleep(REWATCH_SECONDS)
        finally:
            await cancel_and_wait(ticking)

    async def _follow(self, *, resuming: bool) -> None:
        # The resume is the records as they were when the watch opened: each key once, up to the
        # value after which none was pending (nats-py's own "no more values" may come before the
        # first one) or a key seen again (a change made since).
        resuming = resuming and await self._records.count() > 0
        seen: set[str] = set()
        watcher = await self._records.watch_all()
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                if resuming and entry.key in seen:
                    resuming = False
                    seen.clear()
                if resuming:
                    seen.add(entry.key)
                if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    self._schedule.forget(entry.key)
                else:
                    await self._on_record(json.loads(entry.value), resuming=resuming)
                if entry.delta == 0:
                    resuming = False
                    seen.clear()
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    async def _on_record(self, body: dict[str, Any], *, resuming: bool, ticking: bool = False) -> None:
        """One record, seen changed by the watch or found by a tick. A record still marked for
        deletion or not yet accepted on a tick is one whose handling failed (NATS was restarting,
        say): it is handled again, as kopf retries a handler that raised."""
        workflow = workflow_from_body(body)
        marked = bool(body.get("metadata", {}).get("deletionTimestamp"))
        # Until a change says otherwise: a record marked for deletion is handled on every tick
        # till it is gone (should its purge fail), any other when a tick can next change it.
        self._schedule.note(workflow.ref.name, None if marked else self._runner.tick_due(workflow))
        if marked:
            await self._handle(Deleted(), workflow)
            await self._store.deleted(workflow)
            await self._records.purge(workflow.ref.name)  # the finalizer's work is done
            return
        unfinished = not workflow.status.phase.finished
        if resuming and unfinished:
            await self._handle(Resumed(), workflow)
        elif workflow.status.accepted_at is None and unfinished:
            await self._handle(Created(), workflow)
        elif ticking:
            await self._handle(Tick(), workflow)
        # Any other change is the runner's own status write.

    @property
    def scheduled(self) -> int:
        """How many records the ticks keep track of (every record the watch has seen)."""
        return len(self._schedule)

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self._tick_seconds)
            await self.tick()

    async def tick(self) -> None:
        """Tick the records due now, each read afresh; a store that cannot serve ends this tick."""
        for name in self._schedule.due(self._runner.now()):
            try:
                found = await self._records.read_body(name)
                if found is None:
                    self._schedule.forget(name)  # purged while the watch was down
                    continue
                await self._on_record(found[0], resuming=False, ticking=True)
            except BackendUnavailableError as exc:
                log.warning("no tick: %s", exc)
                return
            except Exception:  # the ticks go on whatever one record does
                log.exception("tick of %s failed", name)

    async def _handle(self, given: Input, workflow: Workflow) -> None:
        try:
            await self._runner.handle(given, workflow=workflow)
        except (BackendUnavailableError, nats.errors.Error, TimeoutError, ConnectionError) as exc:
            # The store or NATS is restarting, or full: the next tick or change tries again.
            log.warning("could not reconcile %s for %s: %r", type(given).__name__, workflow.ref.name, exc)
        except Exception:
            # As kopf would: log, and the next tick or change tries again.
            log.exception("could not reconcile %s for %s", type(given).__name__, workflow.ref.name)
