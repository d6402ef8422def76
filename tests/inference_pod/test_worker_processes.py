"""Workers as real processes (``python -m inference_pod``, the same as ``indextts-k8s worker``).

Killed, stopped, and what happens to their job.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nats.js.errors import KeyNotFoundError

from tests.inference_pod.conftest import Bus, speech_job
from tts_api.nats_names import JOBS_STREAM
from tts_api.policy import ValidationPolicy
from tts_api.registry import decode_entry, registry_key

# Four sentences: the synthetic engine spends a quarter of its delay on each, checking for a cancel.
FOUR_SEGMENTS = "".join(f"这是第{n}句话，我们说得慢一点。" for n in "一二三四")
Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(nats_url: str, share: Path, tmp_path: Path) -> Iterator[Spawn]:
    processes: list[subprocess.Popen[bytes]] = []

    def start(pod: str, **settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "POD_NAME": pod,
            "TTS_SHARED_DIR": str(share),
            "TTS_WORKER_NATS_URL": nats_url,
            "TTS_WORKER_ENGINE": "synthetic",
            "TTS_WORKER_HEARTBEAT_SECONDS": "0.3",
            "TTS_WORKER_ACK_WAIT_SECONDS": "2",
            "TTS_WORKER_FETCH_TIMEOUT_SECONDS": "0.2",
            "TTS_WORKER_HTTP_PORT": "0",
            **{f"TTS_WORKER_{key.upper()}": value for key, value in settings.items()},
        }
        log = (tmp_path / f"{pod}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "inference_pod"], env=env, stdout=log, stderr=log)
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


async def exited(process: subprocess.Popen[bytes], seconds: float) -> int:
    for _ in range(int(seconds / 0.05)):
        code = process.poll()
        if code is not None:
            return code
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker {process.pid} still running after {seconds} s")


async def test_a_job_whose_worker_is_killed_is_redelivered_and_reported_once_as_a_lost_worker(
    bus: Bus, spawn: Spawn, policy: ValidationPolicy, share: Path
) -> None:
    """The next worker does not run the attempt again (that would be outside the operator's count):
    it reports it once as the attempt's lost worker, and the operator dispatches the next attempt."""
    first = spawn("pod-a", synthetic_delay_seconds="3")
    job = speech_job("killed", policy, text=FOUR_SEGMENTS, max_text_tokens_per_segment=20)
    await bus.publish(job)
    await bus.wait_for(lambda: len(bus.of(job.job_id, "progress")) >= 2, seconds=20)
    first.send_signal(signal.SIGKILL)
    await exited(first, 5)
    spawn("pod-b", synthetic_delay_seconds="0.5")

    final = await bus.failed(job.job_id, seconds=30)
    assert (final.pod, final.attempt, final.retryable, final.worker_lost) == ("pod-b", 1, True, True)
    assert "the worker holding attempt 1 stopped without finishing it" in final.error.message
    await asyncio.sleep(1.0)  # nothing more arrives
    assert [e.pod for e in bus.of(job.job_id, "started")] == ["pod-a"]
    assert len(bus.of(job.job_id, "failed")) == 1
    assert not bus.of(job.job_id, "completed")
    assert not (share / "workflows" / "output" / "killed.wav").exists()
    assert (await bus.js.stream_info(JOBS_STREAM)).state.messages == 0


async def test_sigterm_lets_the_job_in_hand_finish_within_the_grace_period(
    bus: Bus, spawn: Spawn, policy: ValidationPolicy
) -> None:
    worker = spawn("pod-a", synthetic_delay_seconds="1.5", shutdown_grace_seconds="20")
    job = speech_job("graceful", policy, text=FOUR_SEGMENTS, max_text_tokens_per_segment=20)
    await bus.publish(job)
    await bus.wait_for(lambda: bool(bus.of(job.job_id, "started")), seconds=20)
    bucket = await bus.js.key_value("tts_workers")
    assert decode_entry((await bucket.get(registry_key("pod-a/cpu0"))).value or b"").state == "busy"
    worker.send_signal(signal.SIGTERM)

    assert (await bus.completed(job.job_id, seconds=20)).pod == "pod-a"
    assert await exited(worker, 10) == 0
    with pytest.raises(KeyNotFoundError):  # deleted on a clean stop
        await bucket.get(registry_key("pod-a/cpu0"))


async def test_sigterm_hands_the_job_back_when_the_grace_period_runs_out(
    bus: Bus, spawn: Spawn, policy: ValidationPolicy
) -> None:
    leaving = spawn("pod-a", synthetic_delay_seconds="8", shutdown_grace_seconds="0.5")
    job = speech_job("handed-back", policy, text=FOUR_SEGMENTS, max_text_tokens_per_segment=20)
    await bus.publish(job)
    await bus.wait_for(lambda: bool(bus.of(job.job_id, "started")), seconds=20)
    leaving.send_signal(signal.SIGTERM)
    assert await exited(leaving, 15) == 0
    assert not bus.of(job.job_id, "completed")
    assert not bus.of(job.job_id, "failed")

    spawn("pod-b", synthetic_delay_seconds="0.5")
    final = await bus.completed(job.job_id, seconds=20)
    # The same attempt, not a spent one: the copy put back is a first delivery, run as any job.
    assert (final.pod, final.attempt) == ("pod-b", 1)
    assert [e.pod for e in bus.of(job.job_id, "started")] == ["pod-a", "pod-b"]
    assert not bus.of(job.job_id, "failed")
    assert (await bus.js.stream_info(JOBS_STREAM)).state.messages == 0


async def test_a_process_with_two_slots_registers_both_and_turns_ready(bus: Bus, spawn: Spawn) -> None:
    from nats_support.embedded_nats import free_port
    from tests.inference_pod.test_components import http_get

    port = free_port()
    spawn("pod-two", synthetic_delay_seconds="0.1", slots="2", http_port=str(port))
    bucket = await bus.js.key_value("tts_workers")
    for _ in range(100):
        try:
            status, _ = await http_get(port, "/readyz")
        except OSError:
            status = 0
        if status == 200:
            break
        await asyncio.sleep(0.1)
    assert status == 200
    for slot in ("cpu0", "cpu1"):
        for _ in range(50):  # the entry is refreshed just after the model is marked ready
            entry = decode_entry((await bucket.get(registry_key(f"pod-two/{slot}"))).value or b"")
            if entry.model_state == "ready":
                break
            await asyncio.sleep(0.1)
        assert (entry.slot, entry.state, entry.model_state) == (slot, "idle", "ready")
    _, metrics = await http_get(port, "/metrics")
    assert 'tts_worker_model_ready{slot="cpu0"} 1.0' in metrics
    assert 'tts_worker_model_ready{slot="cpu1"} 1.0' in metrics
