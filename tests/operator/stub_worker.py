"""A stand-in for the inference pods that speaks the shared messages over a real nats-server.

It pulls every model's jobs from the jobs stream (through each model's consumer, as the workers of
every model together would), registers itself in the worker registry as serving every
known model while it pulls, answers with started,
heartbeat, progress and completed events, and records every job and every cancel it sees. Its
``mode`` says how it behaves: ``complete``, ``hold`` (runs until released or cancelled), ``silent``
(says "started", then nothing), ``fail`` (a non-retryable failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

import nats
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from nats_support.jetstream import ensure_jetstream, subscribe_output_cleanup, subscribe_workers
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.messages import (
    CancelMessage,
    CompletedEvent,
    FailedEvent,
    HeartbeatEvent,
    JobMessage,
    Progress,
    StartedEvent,
    WorkerEventBase,
    decode_command,
    encode,
)
from tts_api.nats_names import (
    CANCEL_SUBJECT,
    WORKERS_BUCKET,
    event_subject,
)
from tts_api.output_deletion import OUTPUT_DELETION_SUBJECT, DeleteOutput, decode_deletion
from tts_api.registry import ModelState, WorkerEntry, WorkerState, encode_entry, registry_key
from tts_api.results import OUTPUT_MODELS
from tts_api.speech_models import KNOWN_MODELS

REGISTRY_REFRESH_SECONDS = 3.0

Mode = Literal["complete", "hold", "silent", "fail"]

POD = "stub-pod-0"


def output_for(job: JobMessage) -> dict[str, object]:
    """A result in the workflow API's shape for the job's task."""
    if job.task == TaskName.GENERATE_SPEECH:
        path = (
            job.config.output_path
            if job.config and job.config.output_path
            else "/share/workflows/output/out.wav"
        )
        return {
            "output_path": path,
            "duration": 1.25,
            "sample_rate": 22050,
            "text_length": len(job.config.text or "") if job.config else 0,
            "processing_time": 0.05,
            "model_info": {"model_type": "stub", "model_version": "0", "device": "cpu"},
            "parameters": {},
        }
    model = OUTPUT_MODELS[job.task]
    samples: dict[TaskName, dict[str, object]] = {
        TaskName.HEALTH_CHECK: {
            "status": "healthy",
            "gpu": {"available": False, "count": 0},
            "model": "ready",
            "gpu_lock": "available",
        },
        TaskName.GET_MODEL_INFO: {
            "model_info": {"model_type": "stub", "model_version": "0", "device": "cpu"}
        },
        TaskName.LIST_VOICE_PRESETS: {"presets": {}, "total_count": 0},
    }
    return model.model_validate(samples[job.task]).model_dump(mode="json")


class StubWorker:
    def __init__(self, nats_url: str, *, mode: Mode = "complete", heartbeat_every: float = 0.2) -> None:
        self.nats_url = nats_url
        self.mode: Mode = mode
        self.heartbeat_every = heartbeat_every
        self.jobs: list[JobMessage] = []
        self.cancels: list[CancelMessage] = []
        self.deletions: list[DeleteOutput] = []
        self.completed: list[str] = []
        self.errors: list[str] = []
        self.release = asyncio.Event()
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._pulling: asyncio.Task[None] | None = None
        self._cancelled: set[str] = set()

    async def __aenter__(self) -> StubWorker:
        self._nc = await nats.connect(self.nats_url, connect_timeout=5)
        self._js = self._nc.jetstream()
        await ensure_jetstream(self._js)
        await self._nc.subscribe(CANCEL_SUBJECT, cb=self._on_cancel)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_pulling()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._nc is not None:
            await self._nc.close()

    def start_pulling(self) -> None:
        self._pulling = asyncio.create_task(self._pull())

    async def stop_pulling(self) -> None:
        if self._pulling is not None:
            self._pulling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pulling
            self._pulling = None

    def job_ids(self) -> list[str]:
        return [job.job_id for job in self.jobs]

    def cancelled_ids(self) -> list[str]:
        return [cancel.job_id for cancel in self.cancels]

    async def _on_cancel(self, message: Msg) -> None:
        command = decode_command(message.data)
        if isinstance(command, CancelMessage):
            self.cancels.append(command)
            self._cancelled.add(command.job_id)

    async def _register(self) -> None:
        """Say in the worker registry that a worker serves each known model, as real ones do."""
        assert self._js is not None
        bucket = await self._js.key_value(WORKERS_BUCKET)
        try:
            while True:
                for model in KNOWN_MODELS:
                    entry = WorkerEntry(
                        worker_id=f"{POD}/{model}",
                        pod=POD,
                        slot="cpu0",
                        state=WorkerState.IDLE,
                        engine="stub",
                        model=model,
                        model_state=ModelState.READY,
                        heartbeat_seconds=REGISTRY_REFRESH_SECONDS,
                    )
                    await bucket.put(registry_key(entry.worker_id), encode_entry(entry))
                await asyncio.sleep(REGISTRY_REFRESH_SECONDS)
        finally:
            for model in KNOWN_MODELS:
                with contextlib.suppress(Exception):
                    await bucket.delete(registry_key(f"{POD}/{model}"))

    async def _pull(self) -> None:
        """One pull loop per known model's consumer, and one on the deletions', as real workers read
        them (a delivery lost at a fetch timeout comes again after the ack deadline: keep it short)."""
        assert self._js is not None
        subscriptions = [await subscribe_workers(self._js, model, ack_wait=2) for model in KNOWN_MODELS]
        subscriptions.append(await subscribe_output_cleanup(self._js, ack_wait=2))
        loops = [asyncio.create_task(self._take(subscription)) for subscription in subscriptions]
        loops.append(asyncio.create_task(self._register()))
        try:
            await asyncio.gather(*loops)
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _take(self, subscription: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                messages = await subscription.fetch(1, timeout=0.5)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                self.errors.append(repr(exc))
                raise
            for message in messages:
                if message.subject == OUTPUT_DELETION_SUBJECT:  # a deleted workflow's audio
                    self.deletions.append(decode_deletion(message.data))
                    await message.ack()
                    continue
                command = decode_command(message.data)
                await message.ack()
                if isinstance(command, JobMessage):
                    self.jobs.append(command)
                    task = asyncio.create_task(self._work(command))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _work(self, job: JobMessage) -> None:
        fields = {
            "job_id": job.job_id,
            "workflow": job.workflow,
            "task": job.task,
            "attempt": job.attempt,
            "pod": POD,
            "worker_id": "stub-0",
        }
        await self._send(StartedEvent(**fields, gpu="Stub GPU"))
        if self.mode == "silent":
            return
        if self.mode == "fail":
            error = ErrorInfo(code=ErrorCode.MODEL_NOT_READY, message="the stub has no model")
            await self._send(FailedEvent(**fields, error=error, retryable=False))
            return
        done = 0
        while True:
            if job.job_id in self._cancelled:
                return
            done = min(done + 1, 3)
            await self._send(
                HeartbeatEvent(**fields, progress=Progress(segments_done=done, segments_total=4))
            )
            if (self.mode == "complete" and done >= 3) or (self.mode == "hold" and self.release.is_set()):
                break
            await asyncio.sleep(self.heartbeat_every)
        await self._send(CompletedEvent(**fields, output=output_for(job)))
        self.completed.append(job.job_id)

    async def _send(self, event: WorkerEventBase) -> None:
        assert self._js is not None
        await self._js.publish(
            event_subject(event.workflow.uid, str(getattr(event, "kind", ""))), encode(event)
        )
