"""How each kind of ending is reported and acknowledged: cancels, failures, redeliveries, deadlines,
unreadable jobs. The worker never retries: each failure is reported once and acknowledged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from inference_pod.engines.base import AudioCallback, ProgressCallback, SynthesisOutcome, SynthesisRequest
from inference_pod.engines.synthetic import SyntheticEngine
from nats_support.jetstream import subscribe_workers
from tests.inference_pod.conftest import Bus, WorkerStarter, speech_job
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, TTSError
from tts_api.messages import CancelMessage, encode
from tts_api.nats_names import CANCEL_SUBJECT, JOBS_STREAM, job_subject, workers_consumer
from tts_api.policy import ValidationPolicy
from tts_api.registry import decode_entry, registry_key

FOUR_SEGMENTS = "".join(f"这是第{n}句话，我们说得慢一点。" for n in "一二三四")


class FailingEngine(SyntheticEngine):
    """A synthetic engine whose first ``failures`` syntheses run out of GPU memory."""

    def __init__(self, failures: int) -> None:
        super().__init__(delay_seconds=0.05)
        self.failures = failures
        self.calls = 0

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        self.calls += 1
        if self.calls <= self.failures:
            raise TTSError(ErrorCode.INSUFFICIENT_MEMORY, "CUDA out of memory")
        return super().synthesize(request, progress, audio)


async def queue_is_empty(bus: Bus) -> bool:
    consumer = await bus.js.consumer_info(JOBS_STREAM, workers_consumer("synthetic"))
    stream = await bus.js.stream_info(JOBS_STREAM)
    return stream.state.messages == 0 and consumer.num_ack_pending == 0


async def test_a_cancel_stops_the_job_in_hand_between_segments_and_it_is_not_redelivered(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=4))
    job = speech_job("cancelled", policy, text=FOUR_SEGMENTS, max_text_tokens_per_segment=20)
    await bus.publish(job)
    await bus.wait_for(lambda: bool(bus.of(job.job_id, "started")))
    cancel = CancelMessage(job_id=job.job_id, workflow=job.workflow, reason="workflow deleted")
    await bus.client.publish(CANCEL_SUBJECT, encode(cancel))

    failed = await bus.failed(job.job_id, seconds=10)
    assert "cancelled: workflow deleted" in failed.error.message
    assert failed.retryable is False
    progress = [e for e in bus.of(job.job_id, "progress")]
    assert len(progress) < 5  # stopped before the last segment
    assert not (share / "workflows" / "output" / "cancelled.wav").exists()
    await asyncio.sleep(2.5)
    assert await queue_is_empty(bus)
    assert len(bus.of(job.job_id, "started")) == 1


async def test_a_cancel_that_arrives_before_its_job_drops_the_job(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=0.1))
    job = speech_job("early", policy)
    await bus.client.publish(CANCEL_SUBJECT, encode(CancelMessage(job_id=job.job_id, workflow=job.workflow)))
    await bus.client.flush()
    await asyncio.sleep(0.2)
    await bus.publish(job)
    failed = await bus.failed(job.job_id)
    assert "cancelled" in failed.error.message
    assert not bus.of(job.job_id, "started")


async def test_a_transient_failure_is_reported_once_as_retryable_and_never_redelivered(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    """No nak, no backoff here: whether another attempt runs is the operator's decision."""
    engine = FailingEngine(failures=1)
    await start_worker(engine)
    job = speech_job("flaky", policy)
    await bus.publish(job)
    failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.INSUFFICIENT_MEMORY
    assert failed.error.message == "CUDA out of memory"
    assert (failed.retryable, failed.attempt) == (True, 1)
    await asyncio.sleep(2.5)  # past the ack deadline: a redelivery would have started by now
    assert engine.calls == 1
    assert len(bus.of(job.job_id, "started")) == 1
    assert [e.kind for e in bus.of(job.job_id) if e.kind in ("completed", "failed")] == ["failed"]
    consumer = await bus.js.consumer_info(JOBS_STREAM, workers_consumer("synthetic"))
    assert consumer.num_redelivered == 0
    assert await queue_is_empty(bus)


async def test_a_job_redelivered_because_its_worker_died_is_reported_spent_not_run(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    """A holder that never acknowledges (it died): the next worker reports the attempt abandoned."""
    job = speech_job("orphan", policy, attempt=2)
    await bus.publish(job)
    dying = await subscribe_workers(bus.js, "synthetic", ack_wait=2.0)  # the workers' (fast_settings)
    (held,) = await dying.fetch(1, timeout=5)  # taken, never acknowledged
    assert held.metadata.num_delivered == 1
    engine = FailingEngine(failures=0)
    await start_worker(engine)

    failed = await bus.failed(job.job_id, seconds=10)
    assert failed.retryable is True
    assert failed.attempt == 2
    assert failed.error.code is ErrorCode.PROCESSING_ERROR
    assert "the worker holding attempt 2 stopped without finishing it" in failed.error.message
    assert engine.calls == 0
    assert not bus.of(job.job_id, "started")
    await asyncio.sleep(0.5)
    assert await queue_is_empty(bus)


async def test_a_job_past_its_deadline_fails_with_task_timeout(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=4))
    late = speech_job("late", policy).model_copy(
        update={"deadline": datetime.now(UTC) - timedelta(seconds=1)}
    )
    running = speech_job("overrun", policy, text=FOUR_SEGMENTS, max_text_tokens_per_segment=20)
    running = running.model_copy(update={"deadline": datetime.now(UTC) + timedelta(seconds=1.5)})
    await bus.publish(late)
    await bus.publish(running)
    assert (await bus.failed(late.job_id)).error.code is ErrorCode.TASK_TIMEOUT
    overran = await bus.failed(running.job_id, seconds=10)
    assert overran.error.code is ErrorCode.TASK_TIMEOUT
    assert bus.of(running.job_id, "started")


async def test_unreadable_jobs_are_reported_when_possible_and_never_redelivered(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=0.05))
    job = speech_job("unreadable", policy)
    body = job.model_dump(mode="json")
    body["config"]["emotion_alpha"] = 7  # out of range
    import json

    await bus.js.publish(job_subject("synthetic", TaskName.GENERATE_SPEECH), json.dumps(body).encode())
    await bus.js.publish(job_subject("synthetic", TaskName.GENERATE_SPEECH), b"not json at all")
    failed = await bus.failed(job.job_id)
    assert failed.error.code is ErrorCode.INVALID_INPUT
    assert "emotion_alpha" in failed.error.message
    for _ in range(40):
        if await queue_is_empty(bus):
            break
        await asyncio.sleep(0.1)
    assert await queue_is_empty(bus)


async def test_the_registry_shows_the_worker_idle_then_busy_with_its_job(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    await start_worker(SyntheticEngine(delay_seconds=2), slot="cpu3")
    bucket = await bus.js.key_value("tts_workers")
    idle = decode_entry((await bucket.get(registry_key("test-pod/cpu3"))).value or b"")
    assert (idle.state, idle.engine, idle.model_state, idle.job_id) == ("idle", "synthetic", "ready", None)
    assert idle.gpu is None
    assert idle.gpu_memory_total is None

    job = speech_job("registry", policy)
    await bus.publish(job)
    await bus.wait_for(lambda: bool(bus.of(job.job_id, "started")))
    await asyncio.sleep(0.1)
    busy = decode_entry((await bucket.get(registry_key("test-pod/cpu3"))).value or b"")
    assert (busy.state, busy.job_id, busy.workflow) == ("busy", job.job_id, job.workflow)
    assert busy.last_heartbeat >= idle.last_heartbeat
    await bus.completed(job.job_id)
    await asyncio.sleep(0.1)
    after = decode_entry((await bucket.get(registry_key("test-pod/cpu3"))).value or b"")
    assert (after.state, after.jobs_succeeded) == ("idle", 1)
