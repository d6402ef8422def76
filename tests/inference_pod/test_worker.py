"""The worker against a real nats-server: jobs in, WAVs and events out, acknowledged exactly once."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
import soundfile

from inference_pod.engines.espeak import EspeakEngine
from inference_pod.engines.synthetic import SyntheticEngine
from tests.inference_pod.conftest import Bus, WorkerStarter, speech_job, task_job
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode
from tts_api.messages import ProgressEvent
from tts_api.nats_names import JOBS_STREAM, workers_consumer
from tts_api.policy import ValidationPolicy
from tts_api.results import HealthReport, ModelInfoReport, SpeechResult, VoicePresetList


async def test_a_job_becomes_a_wav_with_the_reported_duration_and_events_in_order(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    worker = await start_worker(EspeakEngine())
    job = speech_job(
        "w1",
        policy,
        text="今天天气真好，我们一起去公园散步吧。Hello, this is a test of the worker with two sentences.",
        max_text_tokens_per_segment=20,
    )
    await bus.publish(job)
    final = await bus.completed(job.job_id)
    result = SpeechResult.model_validate(final.output)
    audio, rate = soundfile.read(share / "workflows" / "output" / "w1.wav", dtype="int16")
    assert rate == result.sample_rate == 22050
    assert abs(len(audio) / rate - result.duration) < 0.01
    assert result.duration > 1.0
    assert result.output_path == "/share/workflows/output/w1.wav"
    assert job.config is not None
    assert result.text_length == len(job.config.text or "")
    assert result.model_info.model_type == "espeak-ng"
    assert result.parameters.max_text_tokens_per_segment == 20

    kinds = [e.kind for e in bus.of(job.job_id)]
    assert kinds[0] == "started"
    assert kinds[-1] == "completed"
    assert set(kinds[1:-1]) <= {"heartbeat", "progress"}
    progress = [e.progress for e in bus.of(job.job_id, "progress") if isinstance(e, ProgressEvent)]
    assert progress[-1].segments_done == progress[-1].segments_total >= 2
    assert [p.segments_done for p in progress] == sorted(p.segments_done for p in progress)
    info = await bus.js.stream_info(JOBS_STREAM)
    assert info.state.messages == 0  # acknowledged, gone from the work queue

    samples = worker.metrics.registry.get_sample_value
    labels = {"task": "indextts.generate_speech", "outcome": "succeeded"}
    assert samples("tts_worker_jobs_total", labels) == 1
    assert samples("tts_worker_real_time_factor_count") == 1
    assert samples("tts_worker_audio_seconds_sum") == pytest.approx(result.duration, abs=0.01)
    assert samples("tts_worker_model_ready", {"slot": "cpu0"}) == 1
    entry = worker.registry_entry()
    assert entry.caches == {}  # espeak keeps nothing per voice
    assert entry.resident_memory is not None
    assert entry.resident_memory > 10 * 2**20


async def test_bad_reference_audio_fails_with_invalid_input_and_is_not_redelivered(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    await start_worker(EspeakEngine())
    (share / "voices").mkdir()
    (share / "voices" / "broken.wav").write_bytes(b"this is not a RIFF file at all")
    job = speech_job("bad", policy, reference_audio="/share/voices/broken.wav")
    await bus.publish(job)
    final = await bus.failed(job.job_id)

    assert final.error.code is ErrorCode.INVALID_INPUT
    assert "reference_audio" in final.error.message
    assert final.retryable is False
    await asyncio.sleep(2.5)  # past the ack deadline: a redelivery would have started by now
    assert len(bus.of(job.job_id, "started")) == 1
    consumer = await bus.js.consumer_info(JOBS_STREAM, workers_consumer("espeak"))
    assert consumer.num_ack_pending == 0
    assert consumer.num_redelivered == 0
    assert not (share / "workflows" / "output" / "bad.wav").exists()


async def test_two_workers_take_six_jobs_one_at_a_time_each(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    engines = [SyntheticEngine(delay_seconds=0.4), SyntheticEngine(delay_seconds=0.4)]
    for index, engine in enumerate(engines):
        await start_worker(engine, slot=f"cpu{index}")
    jobs = [speech_job(f"six{i}", policy) for i in range(6)]
    for job in jobs:
        await bus.publish(job)
    for job in jobs:
        await bus.completed(job.job_id, seconds=30)

    by_worker: dict[str, list[tuple[float, float]]] = {}
    for job in jobs:
        [started] = bus.of(job.job_id, "started")
        [completed] = bus.of(job.job_id, "completed")
        by_worker.setdefault(started.worker_id, []).append((started.at.timestamp(), completed.at.timestamp()))
    assert set(by_worker) == {"test-pod/cpu0", "test-pod/cpu1"}  # both took work
    for intervals in by_worker.values():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end, f"a worker held two jobs at once: {intervals}"


async def test_the_three_information_tasks_answer_in_the_workflow_apis_shapes(
    bus: Bus, start_worker: WorkerStarter, share: Path
) -> None:
    from voice_library.presets import parse_presets

    presets = parse_presets(
        "default: {name: Default Voice, description: 默认语音, language: zh-CN, gender: female, "
        "reference_audio: /share/voices/default.wav}"
    )
    await start_worker(EspeakEngine(), presets=presets)
    jobs = {
        task: task_job(f"info-{task.short}", task)
        for task in TaskName
        if task is not TaskName.GENERATE_SPEECH
    }
    for job in jobs.values():
        await bus.publish(job)
    outputs = {task: (await bus.completed(job.job_id)).output for task, job in jobs.items()}

    health = HealthReport.model_validate(outputs[TaskName.HEALTH_CHECK])
    assert (health.status, health.model, health.gpu_lock, health.gpu.available) == (
        "healthy",
        "ready",
        "available",
        False,
    )
    info = ModelInfoReport.model_validate(outputs[TaskName.GET_MODEL_INFO]).model_info
    assert info.model_type == "espeak-ng"
    assert info.status == "ready"
    assert info.capabilities is not None
    assert info.capabilities.voice_cloning is False
    assert info.capabilities.languages == ["zh", "en"]
    listing = VoicePresetList.model_validate(outputs[TaskName.LIST_VOICE_PRESETS])
    assert listing.total_count == 1
    assert listing.presets["default"].description == "默认语音"


async def test_a_job_runs_only_on_its_models_engine_and_the_worker_says_what_it_serves(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path
) -> None:
    worker = await start_worker(EspeakEngine())
    entry = worker.registry_entry()
    assert (entry.model, entry.device, entry.languages) == ("espeak", "cpu", ["zh", "en"])
    assert entry.model_version

    # Jobs go to their model's subject; one that names another model on this one's (sent by hand,
    # or queued by an older release) is refused, never spoken with the wrong engine.
    elsewhere = speech_job("other-model", policy, model="indextts-2.5")
    await bus.publish(elsewhere, model="espeak")
    refused = await bus.failed(elsewhere.job_id)
    assert refused.error.code is ErrorCode.MODEL_NOT_READY
    assert "'indextts-2.5' was asked for and this worker serves 'espeak'" in refused.error.message
    assert not (share / "workflows" / "output" / "other-model.wav").exists()

    unspoken = speech_job("unspoken", policy, model="espeak", language="ar")
    await bus.publish(unspoken)
    final = await bus.failed(unspoken.job_id)
    assert final.error.code is ErrorCode.INVALID_INPUT
    assert "language: espeak does not speak 'ar'; it speaks zh, en" in final.error.message

    named = speech_job("named", policy, model="espeak", language="en", text="Hello there.")
    await bus.publish(named)
    result = SpeechResult.model_validate((await bus.completed(named.job_id)).output)
    assert result.model_info.model_type == "espeak-ng"


async def test_workers_of_two_models_each_take_only_their_models_jobs(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    espeak = await start_worker(EspeakEngine())
    synthetic = await start_worker(SyntheticEngine(delay_seconds=0.05), slot="cpu1")
    jobs = {
        model: [speech_job(f"{model}-{n}", policy, text="Hello there.") for n in range(3)]
        for model in ("espeak", "synthetic")
    }
    for model, queued in jobs.items():
        for job in queued:
            await bus.publish(job.model_copy(update={"model": model}))
    for model, worker in (("espeak", espeak), ("synthetic", synthetic)):
        for job in jobs[model]:
            done = await bus.completed(job.job_id)
            assert done.worker_id == worker.worker_id
            assert SpeechResult.model_validate(done.output).parameters.model == model
    for model in ("espeak", "synthetic"):
        consumer = await bus.js.consumer_info(JOBS_STREAM, workers_consumer(model))
        assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
