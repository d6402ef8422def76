"""Fixtures for the worker: jobs on a real nats-server, the events they produce, workers to run them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import numpy as np
import pytest
import soundfile
from nats.aio.client import Client
from nats.js import JetStreamContext

from inference_pod.engines.base import Engine
from inference_pod.settings import WorkerSettings
from inference_pod.worker import Worker
from nats_support.jetstream import ensure_jetstream
from tts_api.constants import TaskName
from tts_api.messages import (
    CompletedEvent,
    FailedEvent,
    JobMessage,
    WorkerEvent,
    WorkflowRef,
    decode_event,
    encode,
    make_job_id,
)
from tts_api.nats_names import EVENTS_SUBJECT_PREFIX, job_subject
from tts_api.policy import ValidationPolicy
from tts_api.request import IndexTTSConfig
from tts_api.speech_models import model_of
from voice_library.presets import Presets

# Fast timings so that redelivery and heartbeats happen within a test's seconds.
FAST = {
    "heartbeat_seconds": 0.3,
    "ack_wait_seconds": 2.0,
    "fetch_timeout_seconds": 0.2,
    "shutdown_grace_seconds": 5.0,
    "http_port": 0,
}


def fast_settings(nats_url: str, **overrides: Any) -> WorkerSettings:
    return WorkerSettings(nats_url=nats_url, pod_name="test-pod", **{**FAST, **overrides})


def speech_job(uid: str, policy: ValidationPolicy, *, attempt: int = 1, **config: Any) -> JobMessage:
    fields = {"text": "你好，这是一个测试。", "output_path": f"/share/workflows/output/{uid}.wav", **config}
    return JobMessage(
        job_id=make_job_id(uid, TaskName.GENERATE_SPEECH, attempt),
        workflow=WorkflowRef(uid=uid, name=f"wf-{uid}", namespace="default"),
        task=TaskName.GENERATE_SPEECH,
        attempt=attempt,
        config=IndexTTSConfig.model_validate(fields, context={"policy": policy}),
    )


def task_job(uid: str, task: TaskName) -> JobMessage:
    return JobMessage(
        job_id=make_job_id(uid, task, 1),
        workflow=WorkflowRef(uid=uid, name=f"wf-{uid}"),
        task=task,
        attempt=1,
    )


def write_voice(path: Path, seconds: float = 1.5, rate: int = 16000) -> Path:
    """A short voiced sound (a vowel-like harmonic tone) as a reference audio file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    tone = np.sum([np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)], axis=0)
    soundfile.write(str(path), (0.2 * tone).astype(np.float32), rate)
    return path


@dataclass
class Bus:
    """A client of the test's nats-server: publishes jobs, records every worker event."""

    client: Client
    js: JetStreamContext
    events: list[WorkerEvent] = field(default_factory=list)
    # The model of the workers the test started last: where a job naming none is queued.
    model: str = "synthetic"

    async def publish(self, job: JobMessage, *, model: str | None = None) -> None:
        """Queue ``job`` on ``model``'s subject (else the job's model, else the workers')."""
        subject = job_subject(model or job.model or self.model, job.task)
        await self.js.publish(subject, encode(job), headers={"Nats-Msg-Id": job.job_id})

    def of(self, job_id: str, kind: str | None = None) -> list[WorkerEvent]:
        return [e for e in self.events if e.job_id == job_id and (kind is None or e.kind == kind)]

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + seconds
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                kinds = [(e.job_id, e.kind, e.worker_id) for e in self.events]
                raise AssertionError(f"timed out after {seconds} s; events so far: {kinds}")
            await asyncio.sleep(0.05)

    async def finished(self, job_id: str, seconds: float = 20.0) -> WorkerEvent:
        await self.wait_for(lambda: any(e.kind in ("completed", "failed") for e in self.of(job_id)), seconds)
        return next(e for e in self.of(job_id) if e.kind in ("completed", "failed"))

    async def completed(self, job_id: str, seconds: float = 20.0) -> CompletedEvent:
        event = await self.finished(job_id, seconds)
        assert isinstance(event, CompletedEvent), f"{job_id} failed: {event}"
        return event

    async def failed(self, job_id: str, seconds: float = 20.0) -> FailedEvent:
        event = await self.finished(job_id, seconds)
        assert isinstance(event, FailedEvent), f"{job_id} did not fail: {event}"
        return event


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await ensure_jetstream(js)
    recorder = Bus(client=client, js=js)

    async def record(message: Any) -> None:
        recorder.events.append(decode_event(message.data))

    subscription = await js.subscribe(f"{EVENTS_SUBJECT_PREFIX}.>", cb=record, ordered_consumer=True)
    yield recorder
    await subscription.unsubscribe()
    await client.close()


WorkerStarter = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker(nats_url: str, policy: ValidationPolicy, bus: Bus) -> AsyncIterator[WorkerStarter]:
    """Start in-process workers; each is stopped (and awaited) when the test ends. The bus queues
    jobs for the model of the last one started."""
    running: list[tuple[Worker, asyncio.Task[None]]] = []

    async def start(
        engine: Engine, *, slot: str = "cpu0", presets: Presets | None = None, **overrides: Any
    ) -> Worker:
        worker = Worker(
            settings=fast_settings(nats_url, **overrides),
            policy=policy,
            engine=engine,
            presets=presets or {},
            slot=slot,
        )
        bus.model = model_of(engine.name)
        task = asyncio.create_task(worker.run())
        running.append((worker, task))
        for _ in range(200):
            if worker.ready or task.done():
                break
            await asyncio.sleep(0.05)
        assert worker.ready, "the worker's engine did not load"
        return worker

    yield start
    for worker, _ in running:
        worker.request_stop()
    for _, task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)
