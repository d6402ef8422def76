"""The JetStream loop of one worker slot: pull a job, run it off the event loop, report, acknowledge.

One job at a time per slot (a GPU, or a CPU process). While a job runs, the loop keeps its ack
deadline extended (``in_progress``), publishes heartbeats with progress, and refreshes the worker's
registry entry. A job is acknowledged only after its result is written and its event stored; a worker
that dies leaves the job unacknowledged, and JetStream redelivers it to another worker once the ack
deadline passes; that worker reports the attempt as abandoned without running it (``worker_lost``:
the worker was lost, the job did not fail), and the operator, which counts attempts and lost
workers apart, decides whether another one runs. The worker never retries by itself. What
happens after each kind of ending is decided in :mod:`inference_pod.outcomes`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import BaseModel, ValidationError

from inference_pod import tasks
from inference_pod.engines.base import Engine, JobCancelledError, ProgressCallback
from inference_pod.engines.factory import GPU_ENGINES
from inference_pod.gpu import NO_GPU, GpuStatus, probe_gpu
from inference_pod.memory import resident_memory_bytes
from inference_pod.metrics import WorkerMetrics
from inference_pod.outcomes import (
    HANDED_BACK_HEADER,
    Action,
    CancelReason,
    Disposition,
    Outcome,
    after_cancel,
    after_failure,
    after_redelivery,
    handed_back_count,
)
from inference_pod.output_cleanup import handle_deletion
from inference_pod.settings import WorkerSettings
from inference_pod.speech_sender import SpeechSender
from nats_support.jetstream import ensure_jetstream, subscribe_output_cleanup, subscribe_workers
from nats_support.tasks import cancel_and_wait
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, TTSError
from tts_api.messages import (
    CancelMessage,
    CompletedEvent,
    FailedEvent,
    HeartbeatEvent,
    JobMessage,
    MessageError,
    Progress,
    ProgressEvent,
    StartedEvent,
    WorkerEventBase,
    WorkflowRef,
    decode_command,
    encode,
)
from tts_api.nats_names import (
    CANCEL_SUBJECT,
    VOICES_BUCKET,
    audio_subject,
    event_subject,
    job_subject,
    workers_consumer,
)
from tts_api.policy import ValidationPolicy
from tts_api.registry import ModelState, WorkerEntry, WorkerState, encode_entry, registry_key
from tts_api.results import ResultModel
from tts_api.speech_models import model_of
from tts_api.speech_stream import AudioChunk
from voice_library.library import VoiceLibrary
from voice_library.presets import Presets
from voice_library.store import BucketVoices, VoiceLibraryUnavailableError

log = logging.getLogger(__name__)

# How long a job handed back on shutdown may take to stop before the worker leaves it anyway.
STOP_WAIT_SECONDS = 5.0
# How long the engine's thread waits for one audio message to be handed to NATS.
AUDIO_SEND_SECONDS = 10.0
# Cancels that arrive before their job: remembered so that the job is dropped when it comes.
REMEMBERED_CANCELS = 1024


@dataclass
class JobInHand:
    """The job this slot is working on; the engine's thread reads ``cancel_reason``."""

    job: JobMessage
    message: Msg
    started_at: datetime
    progress: Progress | None = None
    cancel_reason: CancelReason | None = None
    cancel_detail: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self, reason: CancelReason, detail: str) -> None:
        with self.lock:
            if self.cancel_reason is None:
                self.cancel_reason, self.cancel_detail = reason, detail


class Worker:
    """One slot: ``await worker.run()`` until :meth:`request_stop` (SIGTERM) or the task is cancelled."""

    def __init__(
        self,
        *,
        settings: WorkerSettings,
        policy: ValidationPolicy,
        engine: Engine,
        presets: Presets,
        slot: str,
        gpu_index: int | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.engine = engine
        self.presets = presets
        self.slot = slot
        self.worker_id = settings.worker_id(slot)
        self.gpu_index = gpu_index
        self.metrics = metrics or WorkerMetrics()
        self.gpu: GpuStatus = NO_GPU
        self.current: JobInHand | None = None
        self.jobs_succeeded = 0
        self.jobs_failed = 0
        self.started_at = datetime.now(UTC)
        self.last_loop_beat = time.monotonic()
        self._stopping = asyncio.Event()
        self._cancelled_early: collections.OrderedDict[str, str] = collections.OrderedDict()
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._bucket: KeyValue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.worker_id)
        self._voices: KeyValue | None = None  # the stored voices' bucket, once connected

    # --- lifecycle ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.engine.state is ModelState.READY

    def alive(self) -> bool:
        """The event loop still turns (the heartbeat loop stamps it)."""
        return time.monotonic() - self.last_loop_beat < max(30.0, 6 * self.settings.heartbeat_seconds)

    def request_stop(self) -> None:
        """Stop fetching; the job in hand gets ``shutdown_grace_seconds`` to finish, then is handed back."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: no more jobs will be fetched", self.worker_id)
            self._stopping.set()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._nc = await nats.connect(
            self.settings.nats_url, name=self.worker_id, max_reconnect_attempts=-1, reconnect_time_wait=1
        )
        self._js = self._nc.jetstream()
        self._bucket = await ensure_jetstream(self._js)
        self._voices = await self._js.key_value(VOICES_BUCKET)
        cancels = await self._nc.subscribe(CANCEL_SUBJECT, cb=self._on_cancel)
        beat = asyncio.create_task(self._beat_loop(), name=f"{self.worker_id} heartbeat")
        try:
            await self._load_engine()
            if self.engine.state is ModelState.READY:
                await self._fetch_loop()
            else:
                # Stay up, unready, with the error in the registry, until stopped: the pod's readiness
                # probe keeps traffic away and its logs say why.
                await self._stopping.wait()
        finally:
            await cancel_and_wait(beat)
            with contextlib.suppress(Exception):
                await cancels.unsubscribe()
            with contextlib.suppress(Exception):
                await self._bucket.delete(registry_key(self.worker_id))
            with contextlib.suppress(Exception):
                await self._nc.close()
            log.info("worker %s stopped", self.worker_id)

    async def _load_engine(self) -> None:
        log.info("worker %s loading the %s engine", self.worker_id, self.engine.name)
        await self._refresh_registry()
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.engine.load)
        except Exception:
            log.exception("the %s engine failed to load", self.engine.name)
        self.metrics.model_load_seconds.labels(self.slot).set(time.perf_counter() - started)
        self.metrics.model_ready.labels(self.slot).set(1 if self.ready else 0)
        self.gpu = await asyncio.to_thread(
            probe_gpu, self.gpu_index or 0, import_torch=self.engine.name in GPU_ENGINES
        )
        log.info(
            "worker %s: %s engine %s in %.1f s (gpu: %s)",
            self.worker_id,
            self.engine.name,
            self.engine.state.value,
            time.perf_counter() - started,
            self.gpu.name or "none",
        )
        await self._refresh_registry()

    async def _fetch_loop(self) -> None:
        """Take the jobs for this worker's model, one at a time, until told to stop; deleted
        workflows' audio is removed beside them, whatever job is in hand."""
        assert self._js is not None  # noqa: S101 (set in run)
        model = model_of(self.engine.name)
        consumer = await subscribe_workers(self._js, model, ack_wait=self.settings.ack_wait_seconds)
        ack_wait = (await consumer.consumer_info()).config.ack_wait
        if ack_wait is not None and ack_wait < 2 * self.settings.heartbeat_seconds:
            log.warning(
                "the consumer %s was created with an ack deadline of %.1f s, under two heartbeats "
                "(%.1f s): running jobs may be redelivered; raise its ack_wait or lower "
                "TTS_WORKER_HEARTBEAT_SECONDS",
                workers_consumer(model),
                ack_wait,
                self.settings.heartbeat_seconds,
            )
        deletions = await subscribe_output_cleanup(self._js, ack_wait=self.settings.ack_wait_seconds)
        cleanup = asyncio.create_task(self._pull(deletions, self._delete, batch=16), name="output cleanup")
        log.info("worker %s taking jobs for model %s (%s)", self.worker_id, model, workers_consumer(model))
        try:
            await self._pull(consumer, self._handle, batch=1)
        finally:
            await cancel_and_wait(cleanup)

    async def _pull(
        self,
        consumer: JetStreamContext.PullSubscription,
        handle: Callable[[Msg], Awaitable[None]],
        *,
        batch: int,
    ) -> None:
        while not self._stopping.is_set():
            try:
                messages = await consumer.fetch(batch, timeout=self.settings.fetch_timeout_seconds)
            except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from a batch fetch
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as exc:
                log.warning("fetch failed (%s); retrying", exc)
                await asyncio.sleep(1)
                continue
            for message in messages:
                try:
                    await handle(message)
                except (nats.errors.Error, TimeoutError, ConnectionError) as exc:
                    # NATS failed under us (events or acks): the job stays unacknowledged, is
                    # redelivered once its ack deadline passes and reported abandoned (a lost
                    # worker, unless its result was stored already); this worker goes on. A NATS
                    # restart is an outage, not a bug: one line, no traceback.
                    log.warning(
                        "NATS failed while handling a job (%r); it will be redelivered and reported "
                        "abandoned",
                        exc,
                    )
                except Exception:
                    log.exception("handling a job failed; it will be redelivered and reported abandoned")

    async def _delete(self, message: Msg) -> None:
        await handle_deletion(message, self.policy.shared_root)

    # --- one job ----------------------------------------------------------------------------------

    async def _handle(self, message: Msg) -> None:
        delivered = message.metadata.num_delivered
        try:
            command = decode_command(message.data, self.policy)
            if not isinstance(command, JobMessage):
                raise MessageError("a cancel was sent as a job; cancels go to " + CANCEL_SUBJECT)
            job = self._complete(command)
        except MessageError as exc:
            await self._reject(message, str(exc))
            return
        adapter = logging.LoggerAdapter(
            log, {"job_id": job.job_id, "workflow": job.workflow.name, "workflow_uid": job.workflow.uid}
        )
        hand = JobInHand(job=job, message=message, started_at=datetime.now(UTC))
        wait = max(0.0, (hand.started_at - job.dispatched_at).total_seconds())
        self.metrics.queue_wait_seconds.observe(wait)
        early = self._early_refusal(job, delivered)
        if early is not None and early.error is not None:
            adapter.info("job %s refused before it started: %s", job.job_id, early.error.message)
            # A redelivery (its holder died) reports a lost worker, counted apart from the job's failures.
            lost = early.outcome is Outcome.ABANDONED
            await self._publish(
                self._failed(job, early.error, retryable=early.retryable, worker_lost=lost),
                dedupe=f"{job.job_id}/failed",
            )
            await message.ack_sync()
            self.metrics.jobs.labels(job.task.value, early.outcome.value).inc()
            return
        self.current = hand
        self.metrics.busy.labels(self.slot).set(1)
        adapter.info(
            "job %s started (%s, delivery %d, waited %.2f s)", job.job_id, job.task.value, delivered, wait
        )
        try:
            await self._publish(
                StartedEvent(gpu=self.gpu.name, **self._event_fields(job)),
            )
            await self._refresh_registry()
            disposition, output = await self._run_task(hand, adapter)
            await self._finish(hand, disposition, output, adapter)
        finally:
            self.current = None
            self.metrics.busy.labels(self.slot).set(0)
            await self._refresh_registry()

    @staticmethod
    def _complete(job: JobMessage) -> JobMessage:
        """The job, when it carries what its task needs (its config was checked as it was decoded,
        with this worker's policy: its shared root, its limits)."""
        if job.config is None and job.task is TaskName.GENERATE_SPEECH:
            raise MessageError("config: indextts_config is required for indextts.generate_speech")
        return job

    def _early_refusal(self, job: JobMessage, delivered: int) -> Disposition | None:
        """A job that is not run: cancelled before it came, past its deadline, or abandoned by its holder."""
        if job.job_id in self._cancelled_early:
            return after_cancel(CancelReason.OPERATOR, self._cancelled_early[job.job_id])
        if job.deadline is not None and job.deadline <= datetime.now(UTC):
            return after_cancel(CancelReason.DEADLINE, f"it was due at {job.deadline.isoformat()}")
        return after_redelivery(job.attempt, delivered)

    async def _run_task(
        self, hand: JobInHand, adapter: logging.LoggerAdapter[logging.Logger]
    ) -> tuple[Disposition, BaseModel | None]:
        job = hand.job
        loop = asyncio.get_running_loop()

        def on_progress(done: int, total: int) -> None:
            if hand.cancel_reason is not None:
                raise JobCancelledError(hand.cancel_reason.value)
            hand.progress = Progress(segments_done=min(done, total), segments_total=max(total, 1))
            loop.call_soon_threadsafe(self._progress_changed, hand)

        try:
            presets = await self._voices_for(job)
        except TTSError as failure:
            return self._after_error(hand, failure, adapter), None
        # The slot's own thread: asyncio's shared pool has only cpu_count + 4 threads for all slots.
        sender = self._speech_sender(job, loop)
        work: asyncio.Future[Any] = loop.run_in_executor(
            self._task_thread, self._task_sync, job, presets, on_progress, sender
        )
        watch = asyncio.create_task(self._watch(hand))
        try:
            await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                # Shutting down, and the engine did not stop at the cancel: leave it and hand back.
                work.add_done_callback(_swallow)
                adapter.warning("job %s did not stop in time; handing it back", job.job_id)
                return after_cancel(CancelReason.SHUTDOWN, "worker shutting down"), None
            output: ResultModel = work.result()
        except JobCancelledError:
            assert hand.cancel_reason is not None  # noqa: S101 (only the callback raises it)
            adapter.info("job %s stopped: %s", job.job_id, hand.cancel_reason.value)
            return after_cancel(hand.cancel_reason, hand.cancel_detail), None
        except TTSError as failure:
            return self._after_error(hand, failure, adapter), None
        except Exception as exc:
            adapter.exception("job %s failed unexpectedly", job.job_id)
            unexpected = TTSError(ErrorCode.PROCESSING_ERROR, f"{type(exc).__name__}: {exc}")
            return self._after_error(hand, unexpected, adapter), None
        finally:
            await cancel_and_wait(watch)
        return Disposition(Action.ACK, Outcome.SUCCEEDED), output

    def _after_error(
        self, hand: JobInHand, error: TTSError, adapter: logging.LoggerAdapter[logging.Logger]
    ) -> Disposition:
        disposition = after_failure(error)
        adapter.warning(
            "job %s failed with %s: %s (%s)",
            hand.job.job_id,
            error.code.value,
            error.message,
            "retryable" if disposition.retryable else "final",
        )
        return disposition

    def _speech_sender(self, job: JobMessage, loop: asyncio.AbstractEventLoop) -> SpeechSender | None:
        """For a streamed speech job: what sends its audio, from the engine's thread, in order."""
        if job.stream is None or job.task is not TaskName.GENERATE_SPEECH:
            return None
        subject, client = audio_subject(job.stream.id), self._nc
        assert client is not None  # noqa: S101 (connected before any job is taken)

        def send(chunk: AudioChunk) -> None:
            sent = asyncio.run_coroutine_threadsafe(
                client.publish(subject, chunk.data, headers=chunk.headers()), loop
            )
            sent.result(timeout=AUDIO_SEND_SECONDS)

        return SpeechSender(job.stream, job.attempt, send)

    async def _voices_for(self, job: JobMessage) -> Presets:
        """The voices the job may name: the presets, and the stored voices of its workflow's namespace
        that it names (all of them for ``list_voice_presets``)."""
        if self._voices is None:
            return self.presets
        library = VoiceLibrary(
            lambda: self.presets, BucketVoices(self._voices, job.workflow.namespace or "default")
        )
        try:
            if job.task is TaskName.LIST_VOICE_PRESETS:
                return await library.every_preset()
            if job.config is None:
                return self.presets
            return await library.presets_for((job.config.reference_audio, job.config.emotion_reference))
        except VoiceLibraryUnavailableError as exc:
            raise TTSError(ErrorCode.PROCESSING_ERROR, str(exc)) from None

    def _task_sync(
        self,
        job: JobMessage,
        presets: Presets,
        on_progress: ProgressCallback,
        sender: SpeechSender | None = None,
    ) -> ResultModel:
        """The task itself, in a worker thread."""
        if job.task is TaskName.GENERATE_SPEECH:
            assert job.config is not None  # noqa: S101 (checked in _complete)
            result = tasks.generate_speech(
                self.engine,
                job.config,
                self.policy.shared_root,
                presets,
                on_progress,
                owner=tasks.output_owner(job),
                folder=self.policy.output_folder(job.workflow.namespace),
                sender=sender,
                default_model=job.model or self.policy.default_model,
            )
            self.metrics.synthesis_seconds.observe(result.processing_time)
            self.metrics.audio_seconds.observe(result.duration)
            if result.duration > 0:
                self.metrics.real_time_factor.observe(result.processing_time / result.duration)
            return result
        if job.task is TaskName.HEALTH_CHECK:
            gpu = probe_gpu(self.gpu_index or 0, import_torch=True)  # torch when installed
            # This slot answers the check itself, so its lock is free for the next job.
            return tasks.health_check(self.engine, gpu, busy=False, gpu_required=self.settings.require_gpu)
        if job.task is TaskName.GET_MODEL_INFO:
            return tasks.get_model_info(self.engine)
        return tasks.list_voice_presets(presets)

    async def _watch(self, hand: JobInHand) -> None:
        """Cancel the job at its deadline, and on shutdown once the grace period has run out.

        Returns only when the engine was asked to stop for shutdown and did not within
        ``STOP_WAIT_SECONDS``: the job is then handed back all the same.
        """
        deadline = hand.job.deadline
        remaining = (deadline - datetime.now(UTC)).total_seconds() if deadline else None
        stop = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait({stop}, timeout=remaining)
            if not done and deadline is not None:
                hand.cancel(CancelReason.DEADLINE, f"it was due at {deadline.isoformat()}")
                await stop
            await asyncio.sleep(self.settings.shutdown_grace_seconds)
            hand.cancel(CancelReason.SHUTDOWN, "worker shutting down")
            await asyncio.sleep(STOP_WAIT_SECONDS)
        finally:
            stop.cancel()

    async def _finish(
        self,
        hand: JobInHand,
        disposition: Disposition,
        output: BaseModel | None,
        adapter: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        job, message = hand.job, hand.message
        if output is not None:
            await self._publish(
                CompletedEvent(output=output.model_dump(mode="json"), **self._event_fields(job)),
                dedupe=f"{job.job_id}/completed",
            )
        elif disposition.error is not None and disposition.action is Action.ACK:
            failed = self._failed(job, disposition.error, retryable=disposition.retryable)
            await self._publish(failed, dedupe=f"{job.job_id}/failed")
        if disposition.action is Action.ACK:
            await message.ack_sync()
        else:
            await self._hand_back(job, message)
        if disposition.outcome is Outcome.SUCCEEDED:
            self.jobs_succeeded += 1
        elif disposition.outcome is Outcome.FAILED:
            self.jobs_failed += 1
        self.metrics.jobs.labels(job.task.value, disposition.outcome.value).inc()
        adapter.info("job %s %s (%s)", job.job_id, disposition.outcome.value, disposition.action.value)

    async def _hand_back(self, job: JobMessage, message: Msg) -> None:
        """Put the same attempt back on the queue for another worker, without spending it.

        A nak would make JetStream deliver the message again, and a redelivery is how a worker that
        died shows (see :func:`~inference_pod.outcomes.after_redelivery`). So a fresh copy is published
        (delivered for the first time, run like any job) and then the delivered message is
        acknowledged. The copy's ``Nats-Msg-Id`` counts the hand-backs, so a publish retried after a
        lost reply is dropped as a duplicate. Should this worker die between the two steps, the
        original is redelivered and reported abandoned, and the copy is superseded by the attempt the
        operator dispatches next.
        """
        assert self._js is not None  # noqa: S101 (set in run)
        count = handed_back_count(message.headers) + 1
        headers = {"Nats-Msg-Id": f"{job.job_id}/handed-back/{count}", HANDED_BACK_HEADER: str(count)}
        model = job.model or model_of(self.engine.name)  # a job queued by model names it
        await self._js.publish(job_subject(model, job.task), message.data, headers=headers)
        await message.ack_sync()

    async def _reject(self, message: Msg, reason: str) -> None:
        """A job that cannot be read: report it when it says whose it is, and never redeliver it."""
        log.warning("rejecting an unreadable job: %s", reason)
        try:
            raw = json.loads(message.data)
            event = FailedEvent(
                job_id=raw["job_id"],
                workflow=WorkflowRef.model_validate(raw["workflow"]),
                task=TaskName(raw["task"]),
                attempt=int(raw.get("attempt", 1)),
                pod=self.settings.pod_name,
                worker_id=self.worker_id,
                error=TTSError(ErrorCode.INVALID_INPUT, reason).info(),
            )
        except (ValueError, KeyError, TypeError, ValidationError):
            event = None
        if event is not None:
            await self._publish(event, dedupe=f"{event.job_id}/failed")
            await message.ack_sync()
        else:
            await message.term()
        self.metrics.jobs.labels(str(event.task.value if event else "unknown"), Outcome.REJECTED.value).inc()

    # --- events, cancels, heartbeats ------------------------------------------------------------------

    def _event_fields(self, job: JobMessage) -> dict[str, Any]:
        return {
            "job_id": job.job_id,
            "workflow": job.workflow,
            "task": job.task,
            "attempt": job.attempt,
            "pod": self.settings.pod_name,
            "worker_id": self.worker_id,
        }

    def _failed(
        self, job: JobMessage, error: TTSError, *, retryable: bool = False, worker_lost: bool = False
    ) -> FailedEvent:
        return FailedEvent(
            error=error.info(), retryable=retryable, worker_lost=worker_lost, **self._event_fields(job)
        )

    async def _publish(self, event: WorkerEventBase, *, dedupe: str | None = None) -> None:
        assert self._js is not None  # noqa: S101 (set in run)
        kind = str(getattr(event, "kind", "event"))
        headers = {"Nats-Msg-Id": dedupe} if dedupe else None
        await self._js.publish(event_subject(event.workflow.uid, kind), encode(event), headers=headers)

    def _progress_changed(self, hand: JobInHand) -> None:
        if hand.progress is None or self.current is not hand:
            return
        event = ProgressEvent(progress=hand.progress, **self._event_fields(hand.job))
        task = asyncio.ensure_future(self._publish(event))
        task.add_done_callback(_log_failure)

    async def _on_cancel(self, message: Msg) -> None:
        try:
            command = decode_command(message.data, self.policy)
        except MessageError as exc:
            log.warning("ignoring an unreadable cancel: %s", exc)
            return
        if not isinstance(command, CancelMessage):
            return
        hand = self.current
        if hand is not None and hand.job.job_id == command.job_id:
            log.info("job %s: cancel received (%s)", command.job_id, command.reason or "no reason given")
            hand.cancel(CancelReason.OPERATOR, command.reason)
            return
        self._cancelled_early[command.job_id] = command.reason
        while len(self._cancelled_early) > REMEMBERED_CANCELS:
            self._cancelled_early.popitem(last=False)

    async def _beat_loop(self) -> None:
        while True:
            self.last_loop_beat = time.monotonic()
            hand = self.current
            try:
                if hand is not None:
                    await hand.message.in_progress()
                    await self._publish(
                        HeartbeatEvent(progress=hand.progress, **self._event_fields(hand.job))
                    )
                await self._refresh_registry()
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.settings.heartbeat_seconds)

    def registry_entry(self) -> WorkerEntry:
        hand = self.current
        stopping = self._stopping.is_set()
        state = WorkerState.BUSY if hand else (WorkerState.STOPPING if stopping else WorkerState.IDLE)
        described = self.engine.description
        return WorkerEntry(
            worker_id=self.worker_id,
            pod=self.settings.pod_name,
            slot=self.slot,
            state=state,
            job_id=hand.job.job_id if hand else None,
            workflow=hand.job.workflow if hand else None,
            task=hand.job.task if hand else None,
            job_started_at=hand.started_at if hand else None,
            engine=self.engine.name,
            model=model_of(self.engine.name),
            model_version=described.model_version,
            device=described.device,
            languages=list(described.capabilities.languages),
            model_state=self.engine.state,
            gpu=self.gpu.name,
            gpu_memory_used=self.gpu.memory_used,
            gpu_memory_total=self.gpu.memory_total,
            gpu_memory_allocated=self.gpu.memory_allocated,
            gpu_memory_reserved=self.gpu.memory_reserved,
            resident_memory=resident_memory_bytes(),
            caches=self.engine.caches(),
            jobs_succeeded=self.jobs_succeeded,
            jobs_failed=self.jobs_failed,
            started_at=self.started_at,
            heartbeat_seconds=self.settings.heartbeat_seconds,
        )

    async def _refresh_registry(self) -> None:
        if self._bucket is None:
            return
        if self.gpu.available:
            self.gpu = await asyncio.to_thread(probe_gpu, self.gpu_index or 0, import_torch=False)
        entry = self.registry_entry()
        self.metrics.observe_memory(entry)
        await self._bucket.put(registry_key(self.worker_id), encode_entry(entry))


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("publishing progress failed: %s", task.exception())


def _swallow(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's outcome so that asyncio does not warn about it."""
    if not future.cancelled():
        future.exception()
