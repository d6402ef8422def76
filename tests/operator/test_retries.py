"""Retries are decided in one place, the reconcile core; the workers report, never retry.

The operator's runner and events consumer against a real nats-server and real workers (in this
process, the synthetic engine): what counts as an attempt, end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from inference_pod.engines.base import AudioCallback, ProgressCallback, SynthesisOutcome, SynthesisRequest
from inference_pod.engines.synthetic import SyntheticEngine
from inference_pod.worker import Worker
from nats_support.jetstream import ensure_jetstream, subscribe_workers
from tests.inference_pod.conftest import fast_settings
from tests.operator.builders import SPEECH, spec
from tests.operator.cluster import eventually
from tests.operator.memory_store import MemoryStore
from tts_api.errors import ErrorCode, TTSError
from tts_api.messages import StartedEvent, WorkflowRef, encode, make_job_id
from tts_api.nats_names import event_subject
from tts_api.policy import ValidationPolicy
from tts_operator.events_consumer import EventsConsumer, ensure_operator_consumer
from tts_operator.reconcile import Created, Limits
from tts_operator.runner import Runner

LIMITS = Limits(max_attempts=3, backoff_base_seconds=0.1, backoff_max_seconds=0.2)
FOUR_SEGMENTS = "".join(f"这是第{n}句话，我们说得慢一点。" for n in "一二三四")


class FailingEngine(SyntheticEngine):
    """A synthetic engine whose first ``failures`` syntheses fail with ``code``."""

    def __init__(self, failures: int, code: ErrorCode = ErrorCode.INSUFFICIENT_MEMORY) -> None:
        super().__init__(delay_seconds=0.05)
        self.failures = failures
        self.code = code
        self.calls = 0

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise TTSError(self.code, f"{self.code.value} on call {self.calls}")
        return super().synthesize(request, progress, audio)


@dataclass
class Operator:
    store: MemoryStore
    runner: Runner
    nc: NatsClient
    js: JetStreamContext
    workers: list[tuple[Worker, asyncio.Task[None]]] = field(default_factory=list)

    def status(self) -> dict[str, Any]:
        return self.store.status("hello")

    def reasons(self) -> list[str]:
        return [reason for name, reason in self.store.events if name == "hello"]

    async def finished(self) -> dict[str, Any]:
        await eventually(
            lambda: self.status().get("phase") in ("Succeeded", "Failed"), within=30, what="finished"
        )
        return self.status()


WorkerStarter = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def operator(nats_url: str, policy: ValidationPolicy) -> AsyncIterator[Operator]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_jetstream(js)
    await ensure_operator_consumer(js)
    store = MemoryStore()
    # The workers run the synthetic engine: its model is the default, as the chart makes the one it serves.
    served_model = policy.model_copy(update={"default_model": "synthetic"})
    runner = Runner(store, nc, js, limits=LIMITS, policy=served_model, batch_seconds=0)
    consumer = asyncio.create_task(EventsConsumer(js, runner, fetch_timeout=0.3).run())
    running = Operator(store, runner, nc, js)
    yield running
    for worker, _ in running.workers:
        worker.request_stop()
    for _, task in running.workers:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    await runner.close()
    await nc.close()


@pytest.fixture
def start_worker(operator: Operator, nats_url: str, policy: ValidationPolicy) -> WorkerStarter:
    async def start(engine: SyntheticEngine, *, slot: str = "cpu0", **overrides: Any) -> Worker:
        worker = Worker(
            settings=fast_settings(nats_url, **overrides),
            policy=policy,
            engine=engine,
            presets={},
            slot=slot,
        )
        task = asyncio.create_task(worker.run())
        operator.workers.append((worker, task))
        await eventually(lambda: worker.ready, what="the worker's engine loaded")
        return worker

    return start


async def test_a_transient_failure_is_retried_by_the_operator_after_its_backoff(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    engine = FailingEngine(failures=1)
    await start_worker(engine)
    await operator.runner.handle(Created(), workflow=operator.store.add("hello", spec()))
    status = await operator.finished()
    assert status["phase"] == "Succeeded", status
    assert status["stages"][0]["attempt"] == 2
    assert engine.calls == 2
    assert operator.reasons().count("Retrying") == 1


async def test_retryable_failures_give_up_after_max_attempts(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    engine = FailingEngine(failures=100)
    await start_worker(engine)
    await operator.runner.handle(Created(), workflow=operator.store.add("hello", spec()))
    status = await operator.finished()
    assert status["phase"] == "Failed"
    assert status["error"]["code"] == "INSUFFICIENT_MEMORY"
    assert status["error"]["message"] == "INSUFFICIENT_MEMORY on call 3 (gave up after 3 attempts)"
    assert status["stages"][0]["attempt"] == LIMITS.max_attempts
    await asyncio.sleep(0.5)
    assert engine.calls == 3  # one synthesis per attempt: the worker adds none of its own


async def test_a_user_caused_failure_is_final_at_once(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    engine = FailingEngine(failures=100, code=ErrorCode.INVALID_INPUT)
    await start_worker(engine)
    await operator.runner.handle(Created(), workflow=operator.store.add("hello", spec()))
    status = await operator.finished()
    assert status["phase"] == "Failed"
    assert status["error"]["code"] == "INVALID_INPUT"
    assert "gave up" not in status["error"]["message"]
    assert status["stages"][0]["attempt"] == 1
    assert engine.calls == 1
    assert "Retrying" not in operator.reasons()


async def test_a_job_whose_worker_died_is_counted_once_as_a_lost_worker_not_an_attempt(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    workflow = operator.store.add("hello", spec())
    # A worker takes attempt 1, says it started, and dies: it never acknowledges the job.
    dying = await subscribe_workers(operator.js, "synthetic", ack_wait=2.0)  # the workers' (fast_settings)
    await operator.runner.handle(Created(), workflow=workflow)
    (held,) = await dying.fetch(1, timeout=5)
    assert held.metadata.num_delivered == 1
    ref = WorkflowRef(uid=workflow.ref.uid, name="hello", namespace="default")
    started = StartedEvent(
        job_id=make_job_id(ref.uid, SPEECH, 1),
        workflow=ref,
        task=SPEECH,
        attempt=1,
        pod="pod-dead",
        worker_id="pod-dead/cpu0",
    )
    await operator.js.publish(event_subject(ref.uid, "started"), encode(started))
    await eventually(lambda: operator.status().get("phase") == "Running", what="attempt 1 running")

    engine = FailingEngine(failures=0)
    await start_worker(engine)  # JetStream redelivers attempt 1 to it once the ack deadline passes
    status = await operator.finished()
    assert status["phase"] == "Succeeded", status
    assert status["stages"][0]["attempt"] == 2  # attempt 1 ended by the dead worker, once
    assert status["stages"][0]["workerLosses"] == 1  # counted as a lost worker, not a failed attempt
    assert engine.calls == 1  # attempt 1 was not run again
    assert operator.reasons().count("Retrying") == 1


async def test_a_graceful_hand_back_is_not_counted(operator: Operator, start_worker: WorkerStarter) -> None:
    slow = SyntheticEngine(delay_seconds=8)
    leaving = await start_worker(slow, slot="cpu0", shutdown_grace_seconds=0.3)
    body = spec()
    body["workflowConfig"]["indexttsConfig"].update(text=FOUR_SEGMENTS, maxTextTokensPerSegment=20)
    await operator.runner.handle(Created(), workflow=operator.store.add("hello", body))
    await eventually(lambda: operator.status().get("phase") == "Running", what="running on cpu0")
    leaving.request_stop()  # SIGTERM: the grace period runs out, the job is handed back
    await asyncio.sleep(1.0)
    engine = FailingEngine(failures=0)
    await start_worker(engine, slot="cpu1")
    status = await operator.finished()
    assert status["phase"] == "Succeeded", status
    assert status["stages"][0]["attempt"] == 1
    assert status["heartbeat"]["worker"] == "test-pod/cpu1"
    assert engine.calls == 1
    assert "Retrying" not in operator.reasons()
