"""Jobs go to their model's workers, and wait for one, as the worker registry shows them.

A real nats-server, real workers in this process (the synthetic engine, and espeak-ng for a second
model), the operator's runner fed by :class:`ServedModels` as in a deployment, and its events
consumer and ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from inference_pod.engines.base import Engine
from inference_pod.engines.espeak import EspeakEngine
from inference_pod.engines.synthetic import SyntheticEngine
from inference_pod.worker import Worker
from nats_support.jetstream import ensure_jetstream, subscribe_workers
from tests.inference_pod.conftest import fast_settings
from tests.operator.builders import spec
from tests.operator.cluster import eventually
from tests.operator.memory_store import MemoryStore
from tts_api.constants import TaskName
from tts_api.messages import encode
from tts_api.nats_names import JOBS_STREAM, JOBS_SUBJECTS, LEGACY_WORKERS_CONSUMER, legacy_job_subject
from tts_api.policy import ValidationPolicy
from tts_api.registry import WorkerEntry, encode_entry
from tts_operator.events_consumer import EventsConsumer, ensure_operator_consumer
from tts_operator.reconcile import Created, Limits, PublishJob, Resumed, Tick, reconcile
from tts_operator.runner import Runner
from tts_operator.worker_models import ServedModels

LIMITS = Limits(max_queue_seconds=3.0, backoff_base_seconds=0.1, backoff_max_seconds=0.2)


@dataclass
class Operator:
    store: MemoryStore
    runner: Runner
    served: ServedModels
    js: JetStreamContext
    workers: list[tuple[Worker, asyncio.Task[None]]] = field(default_factory=list)

    async def submit(self, name: str, model: str | None = None) -> None:
        body = spec()
        config = body["workflowConfig"]["indexttsConfig"]
        config["outputPath"] = f"/share/workflows/output/{name}.wav"
        if model is not None:
            config["model"] = model
        await self.runner.handle(Created(), workflow=self.store.add(name, body))

    async def finished(self, name: str, within: float = 30) -> dict[str, Any]:
        await eventually(
            lambda: self.store.status(name).get("phase") in ("Succeeded", "Failed"),
            within=within,
            what=f"{name} finished",
        )
        return self.store.status(name)


@pytest.fixture
async def operator(
    nats_url: str, policy: ValidationPolicy, request: pytest.FixtureRequest
) -> AsyncIterator[Operator]:
    nc: NatsClient = await nats.connect(nats_url)
    js = nc.jetstream()
    bucket = await ensure_jetstream(js)
    await ensure_operator_consumer(js)
    served = ServedModels(bucket, connected=lambda: nc.is_connected)
    store = MemoryStore()
    default_synthetic = policy.model_copy(update={"default_model": "synthetic"})
    runner = Runner(
        store,
        nc,
        js,
        limits=getattr(request, "param", LIMITS),
        policy=default_synthetic,
        batch_seconds=0,
        served=served.models,
    )
    running = Operator(store, runner, served, js)

    async def tick() -> None:  # what kopf's timer (or local mode's driver) does
        while True:
            await asyncio.sleep(0.3)
            for workflow in await store.list():
                await runner.handle(Tick(), workflow=workflow)

    tasks = [
        asyncio.create_task(served.run()),
        asyncio.create_task(EventsConsumer(js, runner, fetch_timeout=0.3).run()),
        asyncio.create_task(tick()),
    ]
    await asyncio.wait_for(served.loaded.wait(), timeout=10)
    yield running
    for worker, _ in running.workers:
        worker.request_stop()
    for _, task in running.workers:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=15)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runner.close()
    await nc.close()


WorkerStarter = Callable[[Engine], Awaitable[Worker]]


@pytest.fixture
def start_worker(operator: Operator, nats_url: str, policy: ValidationPolicy) -> WorkerStarter:
    async def start(engine: Engine) -> Worker:
        slot = f"cpu{len(operator.workers)}"
        worker = Worker(settings=fast_settings(nats_url), policy=policy, engine=engine, presets={}, slot=slot)
        task = asyncio.create_task(worker.run())
        operator.workers.append((worker, task))
        await eventually(lambda: worker.ready, what="the worker's engine loaded")
        return worker

    return start


async def test_the_registry_view_follows_workers_as_they_come_and_go(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    assert operator.served.models() == frozenset()
    worker = await start_worker(SyntheticEngine(delay_seconds=0.05))
    await eventually(lambda: operator.served.models() == frozenset({"synthetic"}), what="the worker seen")
    worker.request_stop()  # a worker that stops deletes its entry: seen gone at once, not at the TTL
    await eventually(lambda: operator.served.models() == frozenset(), within=5, what="the worker gone")


async def test_entries_whose_workers_went_silent_or_failed_to_load_serve_nothing(operator: Operator) -> None:
    bucket = await operator.js.key_value("tts_workers")
    now = [0.0]
    view = ServedModels(bucket, ttl_seconds=15, clock=lambda: now[0])
    watching = asyncio.create_task(view.run())
    try:
        for key, model, state in (("a", "espeak", "ready"), ("b", "indextts-2.5", "error")):
            entry = WorkerEntry.model_validate(
                {
                    "worker_id": key,
                    "pod": key,
                    "slot": "cpu0",
                    "state": "idle",
                    "engine": "x",
                    "model": model,
                    "model_state": state,
                    "heartbeat_seconds": 5,
                }
            )
            await bucket.put(key, encode_entry(entry))
        await eventually(lambda: view.models() == frozenset({"espeak"}), what="the ready worker seen")
        now[0] = 16.0  # no refresh for longer than the bucket keeps an entry
        assert view.models() == frozenset()
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching


async def test_each_job_reaches_its_models_worker_and_one_with_none_waits_then_fails_off_the_queue(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    synthetic = SyntheticEngine(delay_seconds=0.05)
    await start_worker(synthetic)
    await eventually(lambda: operator.served.models() == frozenset({"synthetic"}), what="the worker seen")
    await operator.submit("default-model")
    await operator.submit("unserved", model="espeak")
    done = await operator.finished("default-model")
    assert done["phase"] == "Succeeded", done
    assert done["stages"][0]["model"] == "synthetic"
    assert done["result"]["parameters"]["model"] == "synthetic"

    waiting = operator.store.status("unserved")
    assert waiting["phase"] == "Queued"
    running = next(c for c in waiting["conditions"] if c["type"] == "Running")
    assert running["reason"] == "NoWorkerForModel"
    failed = await operator.finished("unserved")
    assert failed["phase"] == "Failed"
    assert failed["error"]["code"] == "MODEL_NOT_READY"
    assert "no inference worker served model espeak within 3 s" in failed["error"]["message"]
    assert "TTS_WORKER_ENGINE=espeak" in failed["error"]["message"]
    assert "models served now: synthetic" in failed["error"]["message"]
    # Taken off the queue: an espeak worker starting now finds nothing to run for nothing.
    await eventually(
        lambda: _stored_jobs(operator.js, 0), what="the failed workflow's job taken off the queue"
    )


@pytest.mark.parametrize("operator", [Limits(max_queue_seconds=60)], indirect=True)
async def test_a_worker_that_starts_within_the_wait_takes_the_job(
    operator: Operator, start_worker: WorkerStarter
) -> None:
    await operator.submit("early", model="espeak")
    await eventually(
        lambda: _condition(operator.store.status("early")) == "NoWorkerForModel", what="waiting said"
    )
    await start_worker(EspeakEngine())
    done = await operator.finished("early")
    assert done["phase"] == "Succeeded", done
    assert done["result"]["parameters"]["model"] == "espeak"
    assert done["stages"][0].get("noWorkerSince") is None


async def test_a_job_queued_by_a_release_without_models_is_queued_again_by_model(
    operator: Operator, start_worker: WorkerStarter, policy: ValidationPolicy
) -> None:
    """The consumer every worker shared, and its queued jobs, give way to one consumer per model;
    the operator resumes the workflow and queues the attempt on its model's subject, where a
    worker for it runs it."""
    js = operator.js
    legacy = ConsumerConfig(durable_name=LEGACY_WORKERS_CONSUMER, filter_subject=JOBS_SUBJECTS)
    await js.add_consumer(JOBS_STREAM, legacy)
    workflow = operator.store.add("old", spec())
    # The status as that release left it: attempt 1 queued, no model recorded.
    accepted = reconcile(workflow, Created(), now=datetime.now(UTC), limits=LIMITS, policy=policy)
    assert accepted.status is not None
    accepted.status.stages[0].model = None
    operator.store.bodies[("default", "old")]["status"] = accepted.status.to_k8s()
    (published,) = [a.job for a in accepted.actions if isinstance(a, PublishJob)]
    old_job = published.model_copy(update={"model": None})
    headers = {"Nats-Msg-Id": old_job.job_id}
    await js.publish(legacy_job_subject(TaskName.GENERATE_SPEECH), encode(old_job), headers=headers)

    await ensure_jetstream(js)  # what every component does as it starts
    with pytest.raises(NotFoundError):
        await js.consumer_info(JOBS_STREAM, LEGACY_WORKERS_CONSUMER)
    assert await _stored_jobs(js, 0)
    await subscribe_workers(js, "espeak", ack_wait=5)  # a work queue admits it now

    resumed = await operator.store.get("default", "old")
    assert resumed is not None
    await operator.runner.handle(Resumed(), workflow=resumed)
    assert operator.store.status("old")["stages"][0]["model"] == "synthetic"
    await start_worker(SyntheticEngine(delay_seconds=0.05))
    done = await operator.finished("old")
    assert done["phase"] == "Succeeded", done


def _condition(status: dict[str, Any]) -> str | None:
    return next((c["reason"] for c in status.get("conditions", []) if c["type"] == "Running"), None)


async def _stored_jobs(js: JetStreamContext, count: int) -> bool:
    return (await js.stream_info(JOBS_STREAM)).state.messages == count
