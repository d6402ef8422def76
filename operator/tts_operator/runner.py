"""Applies the core's decisions: writes status through a store, then publishes and posts.

Store-agnostic: the kopf handlers and the events consumer call :meth:`Runner.handle`; local mode
drives the same runner over its own store.

Order: the status is written first, then the actions are performed ("record, then act"). A crash in
between leaves a status that says a job was queued that may not have been published; the next tick
or the resume re-publishes the recorded attempt under the same ``Nats-Msg-Id``, and JetStream drops
it if the first publish did land. A failed status write performs no action at all.

Heartbeat-only changes (``Decision.batchable``) are held for ``batch_seconds`` and written together,
so a busy cluster does not send one PATCH per heartbeat. The runner keeps the latest status of each
unfinished workflow it touched (it is the only writer), so a held change is never lost to a stale read.

Memory stays bounded by the work in hand, not by the workflows kept: a workflow this process
finished is forgotten ``FINISHED_MEMORY_SECONDS`` later (long enough that no body from before the
finish can still arrive), one read as finished is never held, and a workflow's lock lives only while
someone holds or waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from tts_api.constants import StageState
from tts_api.messages import CancelMessage, JobMessage, WorkflowRef, encode
from tts_api.nats_names import CANCEL_SUBJECT, JOBS_STREAM, dispatch_id, job_subject
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflowStatus
from tts_operator import metrics
from tts_operator.reconcile import (
    Action,
    Decision,
    Deleted,
    DeleteWorkflow,
    EventLevel,
    Input,
    Limits,
    PostEvent,
    PublishCancel,
    PublishJob,
    Tick,
    Workflow,
    posted,
    reconcile,
    tick_due,
)
from tts_operator.store import WorkflowGoneError, WorkflowStore

log = logging.getLogger(__name__)

Key = tuple[str | None, str]
# How many published job ids the runner remembers (see Runner._landed).
LANDED_MEMORY = 10_000
# How long a workflow this process finished stays in memory (see the module's docstring).
FINISHED_MEMORY_SECONDS = 30.0
Ack = Callable[[], Awaitable[Any]]


def merge_patch(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``; lists are replaced whole."""
    patch: dict[str, Any] = dict.fromkeys(old.keys() - new.keys())
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or value != before:
            patch[key] = value
    return patch


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Entry:
    """What this process knows of one workflow: its latest status, and the status last written."""

    workflow: Workflow
    written: TTSWorkflowStatus
    acks: list[Ack] = field(default_factory=list)
    flush: asyncio.Task[None] | None = None


class KeyedLocks:
    """One lock per workflow, kept only while someone holds it or waits for it."""

    def __init__(self) -> None:
        self._held: dict[Key, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Key) -> AsyncIterator[None]:
        lock, users = self._held.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._held[key]

    def __len__(self) -> int:
        return len(self._held)


class Runner:
    def __init__(
        self,
        store: WorkflowStore,
        nc: NatsClient,
        js: JetStreamContext,
        *,
        limits: Limits,
        policy: ValidationPolicy,
        batch_seconds: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        events: EventLevel = "all",
        served: Callable[[], frozenset[str] | None] = lambda: None,
    ) -> None:
        """``served`` says which models live workers serve now (None: not known; then no job waits
        for a worker of its model): see :class:`tts_operator.worker_models.ServedModels`."""
        self.store = store
        self._nc = nc
        self._js = js
        self._limits = limits
        self._policy = policy
        self._batch_seconds = batch_seconds
        self._clock = clock
        self._events = events
        self._served = served
        self._entries: dict[Key, _Entry] = {}
        self._locks = KeyedLocks()
        # Workflows this process finished, oldest first, with when (time.monotonic()).
        self._finished: OrderedDict[Key, float] = OrderedDict()
        self._later: set[asyncio.Task[None]] = set()
        # Jobs this process saw JetStream accept: re-announcing them again is pointless (a restarted
        # process re-announces once, and JetStream drops it if it had landed).
        self._landed: OrderedDict[str, None] = OrderedDict()
        # Where each job this process queued lies in the stream (job id → sequence), so that a job
        # cancelled before any worker started it is taken off the queue (best effort: a restarted
        # process knows none, and such a job then runs on a late worker and its result is ignored).
        self._queued_at: OrderedDict[str, int] = OrderedDict()
        # False until the events consumer has read the backlog: till then a heartbeat in status may
        # be stale only because its successors are still unread, so ticks wait.
        self.events_caught_up = True

    async def handle(
        self,
        given: Input,
        *,
        workflow: Workflow | None = None,
        namespace: str | None = None,
        name: str | None = None,
        landed: Ack | None = None,
    ) -> Decision:
        """Reconcile ``given`` for the workflow (a kopf body's, or looked up by namespace/name).

        ``landed`` is called once the resulting status is written (at once when nothing changes):
        the events consumer acknowledges the event there. Raises when the status cannot be written.
        """
        if isinstance(given, Tick) and not self.events_caught_up:
            return Decision(ignored="reading the worker events sent while the operator was down first")
        if workflow is not None:
            namespace, name = workflow.ref.namespace, workflow.ref.name
        if name is None:
            raise ValueError("handle() needs a workflow or its name")
        key = (namespace, name)
        async with self._locks.hold(key):
            entry = await self._entry(key, workflow)
            label = type(given).__name__
            if entry is None:
                metrics.RECONCILES.labels(label, "ignored").inc()
                if landed is not None:
                    await landed()
                return Decision(ignored="the workflow no longer exists")
            before = entry.workflow
            decision = reconcile(
                before,
                given,
                now=self._clock(),
                limits=self._limits,
                policy=self._policy,
                served=self._served(),
            )
            try:
                await self._record(key, entry, decision, landed)
            except WorkflowGoneError:
                self._forget(key)
                metrics.RECONCILES.labels(label, "ignored").inc()
                if landed is not None:
                    await landed()
                return Decision(ignored="the workflow was deleted meanwhile")
            except Exception:
                metrics.RECONCILES.labels(label, "error").inc()
                self._forget(key)  # read it afresh next time
                raise
            outcome = "ignored" if decision.ignored else ("changed" if decision.status else "unchanged")
            metrics.RECONCILES.labels(label, outcome).inc()
            if decision.status is not None:
                _observe(before.status, decision)
                _log_transition(before, decision.status)
            await self._perform(key, before.ref, decision.actions)
            if isinstance(given, Deleted) or any(isinstance(a, DeleteWorkflow) for a in decision.actions):
                self._forget(key)
            elif decision.status is not None and decision.status.phase.finished:
                self._finished[key] = time.monotonic()
                self._finished.move_to_end(key)
        self._let_go_of_finished()
        return decision

    def tick_due(self, workflow: Workflow) -> datetime | None:
        """When a Tick can next change ``workflow``, by this runner's clock and limits; None: every
        tick (it is unfinished)."""
        return tick_due(workflow, now=self._clock(), limits=self._limits)

    def now(self) -> datetime:
        return self._clock()

    @property
    def held(self) -> int:
        """How many workflows this process holds in memory (their latest status, a lock)."""
        return len(self._entries) + len(self._locks)

    def _let_go_of_finished(self) -> None:
        """Forget the workflows finished more than ``FINISHED_MEMORY_SECONDS`` ago."""
        cutoff = time.monotonic() - FINISHED_MEMORY_SECONDS
        while self._finished:
            key, finished_at = next(iter(self._finished.items()))
            if finished_at > cutoff:
                return
            del self._finished[key]
            entry = self._entries.get(key)
            if entry is not None and entry.workflow.status.phase.finished and entry.flush is None:
                del self._entries[key]

    async def close(self) -> None:
        """Write held heartbeats, stop delayed publishes."""
        for key, entry in list(self._entries.items()):
            if entry.flush is not None:
                entry.flush.cancel()
                with contextlib.suppress(Exception):
                    await self._flush_now(key, entry)
        for task in list(self._later):
            task.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)

    # --- status ---------------------------------------------------------------------------------

    async def _entry(self, key: Key, workflow: Workflow | None) -> _Entry | None:
        entry = self._entries.get(key)
        if workflow is not None:
            if entry is None or entry.workflow.ref.uid != workflow.ref.uid:
                if entry is not None and entry.flush is not None:
                    entry.flush.cancel()
                entry = _Entry(workflow, workflow.status)
                self._hold(key, entry)
            else:
                # This process wrote the status it holds; the body may lag behind it. Spec from the body.
                entry.workflow = replace(entry.workflow, spec=workflow.spec, generation=workflow.generation)
            return entry
        if entry is None:
            fetched = await self.store.get(*key)
            if fetched is None:
                return None
            entry = _Entry(fetched, fetched.status)
            self._hold(key, entry)
        return entry

    def _hold(self, key: Key, entry: _Entry) -> None:
        """Keep a workflow read from the store, unless it is finished: nothing more is written then."""
        if entry.workflow.status.phase.finished:
            self._entries.pop(key, None)
        else:
            self._entries[key] = entry

    async def _record(self, key: Key, entry: _Entry, decision: Decision, landed: Ack | None) -> None:
        if decision.status is not None:
            entry.workflow = replace(entry.workflow, status=decision.status)
            if decision.batchable and self._batch_seconds > 0:
                if landed is not None:
                    entry.acks.append(landed)
                if entry.flush is None:
                    entry.flush = asyncio.create_task(self._flush_later(key, entry))
                return
            await self._write(entry, "immediate")
        acks, entry.acks = entry.acks, []
        for ack in (*acks, landed):
            if ack is not None:
                await ack()

    async def _write(self, entry: _Entry, kind: str) -> None:
        new = entry.workflow.status
        patch = merge_patch(entry.written.to_k8s(), new.to_k8s())
        if not patch:
            return
        try:
            await self.store.patch_status(entry.workflow.ref, patch)
        except WorkflowGoneError:
            raise
        except Exception:
            metrics.STATUS_PATCH_ERRORS.inc()
            raise
        metrics.STATUS_PATCHES.labels(kind).inc()
        entry.written = new

    async def _flush_later(self, key: Key, entry: _Entry) -> None:
        await asyncio.sleep(self._batch_seconds)
        async with self._locks.hold(key):
            entry.flush = None
            if self._entries.get(key) is not entry:
                return
            try:
                await self._flush_now(key, entry)
            except WorkflowGoneError:
                self._forget(key)
            except Exception:
                # The held events stay unacknowledged: JetStream redelivers them.
                log.exception("writing batched heartbeats of %s/%s failed", *key)
                self._forget(key)

    async def _flush_now(self, key: Key, entry: _Entry) -> None:
        await self._write(entry, "batched")
        acks, entry.acks = entry.acks, []
        for ack in acks:
            await ack()

    def _forget(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.flush is not None and entry.flush is not asyncio.current_task():
            entry.flush.cancel()

    # --- actions --------------------------------------------------------------------------------

    async def _perform(self, key: Key, ref: WorkflowRef, actions: tuple[Action, ...]) -> None:
        for action in actions:
            match action:
                case PublishJob(job=job, delay_seconds=delay) if delay > 0:
                    task = asyncio.create_task(self._publish_later(key, job, delay))
                    self._later.add(task)
                    task.add_done_callback(self._later.discard)
                case PublishJob(job=job):
                    await self.publish_job(job)
                case PublishCancel(cancel=cancel, dequeue=dequeue):
                    await self.publish_cancel(cancel)
                    if dequeue:
                        await self._dequeue(cancel.job_id)
                case PostEvent(type=kind) if not posted(self._events, kind):
                    continue
                case PostEvent(type=kind, reason=reason, message=message):
                    try:
                        await self.store.post_event(ref, kind, reason, message)
                    except Exception as exc:  # an Event is a courtesy; the status holds the truth
                        log.warning(
                            "could not post event %s on %s/%s: %s", reason, ref.namespace, ref.name, exc
                        )
                case DeleteWorkflow(reason=reason):
                    log.info("deleting %s/%s: %s", ref.namespace, ref.name, reason, extra=_extra(ref))
                    await self.store.delete(ref)

    async def publish_job(self, job: JobMessage) -> None:
        """Queue ``job`` on its model's subject (``job.model``, which the core always sets)."""
        if job.job_id in self._landed:
            return
        if job.model is None:
            raise ValueError(f"job {job.job_id} names no model: it has no subject to go to")
        ack = await self._js.publish(
            job_subject(job.model, job.task),
            encode(job),
            headers={"Nats-Msg-Id": dispatch_id(job.job_id, job.model)},
        )
        self._landed[job.job_id] = None
        while len(self._landed) > LANDED_MEMORY:
            self._landed.popitem(last=False)
        duplicate = bool(ack.duplicate)
        if not duplicate:
            self._queued_at[job.job_id] = ack.seq
            while len(self._queued_at) > LANDED_MEMORY:
                self._queued_at.popitem(last=False)
        metrics.DISPATCHES.labels(job.task.value, "duplicate" if duplicate else "new").inc()
        log.info(
            "%s job %s for model %s",
            "re-announced (JetStream dropped the duplicate)" if duplicate else "published",
            job.job_id,
            job.model,
            extra=_extra(job.workflow),
        )

    async def _dequeue(self, job_id: str) -> None:
        """Take a cancelled job that no worker started off the jobs queue, if this process queued it."""
        seq = self._queued_at.pop(job_id, None)
        if seq is None:
            return
        try:
            await self._js.delete_msg(JOBS_STREAM, seq)
        except Exception as exc:  # taken meanwhile (then the cancel stops it), or NATS is away
            log.debug("job %s was not taken off the queue: %s", job_id, exc)
        else:
            log.info("took job %s off the jobs queue", job_id)

    async def publish_cancel(self, cancel: CancelMessage) -> None:
        await self._nc.publish(CANCEL_SUBJECT, encode(cancel))
        log.info("cancelled job %s: %s", cancel.job_id, cancel.reason, extra=_extra(cancel.workflow))

    async def _publish_later(self, key: Key, job: JobMessage, delay: float) -> None:
        await asyncio.sleep(delay)
        entry = self._entries.get(key)
        if entry is None or not _still_queued(entry.workflow.status, job):
            # Superseded while it waited (deleted, timed out, failed): publishing it would waste a GPU.
            log.info(
                "not publishing %s: no longer the queued attempt", job.job_id, extra=_extra(job.workflow)
            )
            return
        try:
            await self.publish_job(job)
        except Exception:
            # The status records the attempt as queued: the next tick re-announces it.
            log.exception("publishing %s after its backoff failed; the next tick retries", job.job_id)


def _still_queued(status: TTSWorkflowStatus, job: JobMessage) -> bool:
    stage = status.stage(job.task)
    return (
        not status.phase.finished
        and status.current_stage == job.task
        and stage is not None
        and stage.attempt == job.attempt
        and stage.state == StageState.QUEUED
    )


def _extra(ref: WorkflowRef) -> dict[str, Any]:
    return {"workflow_namespace": ref.namespace, "workflow_name": ref.name, "workflow_uid": ref.uid}


def _log_transition(before: Workflow, after: TTSWorkflowStatus) -> None:
    if before.status.phase != after.phase:
        log.info(
            "%s/%s: %s -> %s",
            before.ref.namespace,
            before.ref.name,
            before.status.phase.value,
            after.phase.value,
            extra=_extra(before.ref),
        )


def _observe(old: TTSWorkflowStatus, decision: Decision) -> None:
    """Metrics of a transition."""
    new = decision.status
    if new is None:
        return
    if new.phase.finished and not old.phase.finished:
        metrics.FINISHED.labels(new.phase.value).inc()
        if decision.timed_out is not None:
            metrics.TIMEOUTS.labels(decision.timed_out).inc()
    for stage in new.stages:
        previous = old.stage(stage.name)
        if previous is not None and 0 < previous.attempt < stage.attempt:
            metrics.RETRIES.labels(stage.name.value).inc()
        ended = stage.state in (StageState.SUCCEEDED, StageState.FAILED)
        changed = previous is None or previous.state != stage.state
        if ended and changed and stage.started_at is not None and stage.finished_at is not None:
            seconds = (stage.finished_at - stage.started_at).total_seconds()
            metrics.STAGE_SECONDS.labels(stage.name.value, stage.state.value).observe(max(0.0, seconds))
