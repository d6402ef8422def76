"""What an autoscaler reads: each model's jobs waiting or in hand, on a real nats-server's monitoring.

KEDA's ``nats-jetstream`` scaler reads ``/jsz?acc=<account>&consumers=true&config=true`` and takes,
for the consumer it is given, ``num_pending + num_ack_pending``; a consumer it cannot find makes it
take the stream's last sequence instead (every message ever queued). So each model's consumer must
exist before its first worker, and count that model's jobs only. Measured here while jobs queue and
a real worker (the synthetic engine, in this process) drains them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.request
from pathlib import Path
from typing import Any

import nats

from inference_pod.engines.synthetic import SyntheticEngine
from inference_pod.worker import Worker
from nats_support.embedded_nats import EmbeddedNats, free_port
from nats_support.jetstream import ensure_jetstream, ensure_model_consumers
from tests.inference_pod.conftest import fast_settings, speech_job
from tests.operator.cluster import eventually
from tts_api.messages import encode
from tts_api.nats_names import JOBS_STREAM, job_subject, workers_consumer
from tts_api.policy import ValidationPolicy


def jsz(monitor_port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{monitor_port}/jsz?acc=$G&consumers=true&config=true"
    with urllib.request.urlopen(url, timeout=5) as answer:
        document: dict[str, Any] = json.load(answer)
    return document


def lag(monitor_port: int, model: str) -> int:
    """The scaler's figure for ``model``'s consumer, as it computes it; an AssertionError if the
    consumer is not there (the scaler would then count the whole stream)."""
    (account,) = [a for a in jsz(monitor_port)["account_details"] if a["name"] == "$G"]
    (stream,) = [s for s in account["stream_detail"] if s["name"] == JOBS_STREAM]
    consumers = {c["name"]: c for c in stream.get("consumer_detail", [])}
    assert workers_consumer(model) in consumers, f"no consumer for {model}: {sorted(consumers)}"
    consumer = consumers[workers_consumer(model)]
    return int(consumer["num_pending"]) + int(consumer["num_ack_pending"])


async def test_each_models_lag_counts_its_jobs_from_before_any_worker_until_they_drain(
    tmp_path: Path, policy: ValidationPolicy
) -> None:
    monitor = free_port()
    with EmbeddedNats(tmp_path / "jetstream", monitor_port=monitor) as server:
        client = await nats.connect(server.url)
        js = client.jetstream()
        await ensure_jetstream(js)
        # What the operator does at start, for the deployment's models: no worker has run yet.
        await ensure_model_consumers(js, ["synthetic", "espeak"])
        assert (lag(monitor, "synthetic"), lag(monitor, "espeak")) == (0, 0)
        for index in range(5):
            job = speech_job(f"s{index}", policy)
            await js.publish(job_subject("synthetic", job.task), encode(job))
        for index in range(2):
            job = speech_job(f"e{index}", policy)
            await js.publish(job_subject("espeak", job.task), encode(job))
        assert (lag(monitor, "synthetic"), lag(monitor, "espeak")) == (5, 2)

        worker = Worker(
            settings=fast_settings(server.url),
            policy=policy,
            engine=SyntheticEngine(delay_seconds=0.3),
            presets={},
            slot="cpu0",
        )
        running = asyncio.create_task(worker.run())
        try:
            # In hand counts as much as waiting: a busy pod is not scaled away under its job.
            await eventually(lambda: worker.current is not None, within=20, what="a job in hand")
            assert 1 <= lag(monitor, "synthetic") <= 5
            await eventually(lambda: lag(monitor, "synthetic") == 0, within=30, what="synthetic drained")
            assert lag(monitor, "espeak") == 2  # no espeak worker: its jobs wait, and say so
        finally:
            worker.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(running, timeout=15)
            await client.close()
