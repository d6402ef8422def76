"""Churn among the workers: real worker processes SIGKILLed under load.

The operator's runner, events consumer and ticks run in this process on a real nats-server, as local
mode drives them; the workers are real processes (``python -m inference_pod``, the synthetic
engine), killed while they hold a job and replaced, as a cluster replaces a pod whose node is lost.
The user's budget is one attempt, so any kill that spent an attempt would fail its workflow: churn
must spend none, while a job that kills every worker it runs on still stops, saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from nats_support.jetstream import ensure_jetstream
from tests.operator.builders import spec
from tests.operator.memory_store import MemoryStore
from tests.operator.poison_worker import POISON
from tts_api.messages import CompletedEvent, decode_event
from tts_api.nats_names import EVENTS_STREAM, WORKERS_BUCKET
from tts_api.policy import ValidationPolicy
from tts_api.registry import decode_entry
from tts_operator.events_consumer import EventsConsumer, ensure_operator_consumer
from tts_operator.reconcile import Created, Limits, Tick
from tts_operator.runner import Runner

REPO = Path(__file__).resolve().parents[2]
# One attempt for the user's job: a worker loss counted against it would fail the workflow. The
# worker losses keep their default budget.
LIMITS = Limits(
    max_attempts=1,
    heartbeat_stale_seconds=10.0,
    backoff_base_seconds=0.05,
    backoff_max_seconds=0.2,
)
# A poisoned job dies with every worker: a smaller budget of losses, so that it stops sooner.
POISON_LIMITS = replace(LIMITS, max_worker_losses=3)


@dataclass
class Fleet:
    """Worker processes, each named by its pod; a killed one is replaced by a fresh pod."""

    nats_url: str
    share: Path
    logs: Path
    delay: float
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: int = 0

    def spawn(self) -> str:
        self.started += 1
        pod = f"pod-{self.started}"
        env = {
            **os.environ,
            "POD_NAME": pod,
            "TTS_SHARED_DIR": str(self.share),
            "TTS_WORKER_NATS_URL": self.nats_url,
            "TTS_WORKER_ENGINE": "synthetic",
            "TTS_WORKER_SYNTHETIC_DELAY_SECONDS": str(self.delay),
            "TTS_WORKER_HEARTBEAT_SECONDS": "0.3",
            "TTS_WORKER_ACK_WAIT_SECONDS": "2",
            "TTS_WORKER_FETCH_TIMEOUT_SECONDS": "0.2",
            "TTS_WORKER_HTTP_PORT": "0",
        }
        with (self.logs / f"{pod}.log").open("wb") as log:
            self.processes[pod] = subprocess.Popen(
                [sys.executable, "-m", "tests.operator.poison_worker"],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=log,
            )
        return pod

    def kill(self, pod: str) -> bool:
        """SIGKILL the pod's worker, if it still runs; a fresh pod takes its place."""
        process = self.processes.pop(pod, None)
        if process is None or process.poll() is not None:
            return False
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.spawn()
        return True

    def replace_the_dead(self) -> list[str]:
        """Pods whose worker died by itself (the poison), each replaced by a fresh one."""
        dead = [pod for pod, process in self.processes.items() if process.poll() is not None]
        for pod in dead:
            del self.processes[pod]
            self.spawn()
        return dead

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@dataclass
class Operator:
    store: MemoryStore
    runner: Runner
    nc: NatsClient
    js: JetStreamContext

    def phases(self) -> dict[str, str]:
        return {
            name: body.get("status", {}).get("phase", "") for (_, name), body in self.store.bodies.items()
        }

    def all_finished(self) -> bool:
        return all(phase in ("Succeeded", "Failed") for phase in self.phases().values())


@pytest.fixture
def fleet(nats_url: str, share: Path, tmp_path: Path) -> Iterator[Fleet]:
    running = Fleet(nats_url, share, tmp_path, delay=0.6)
    yield running
    running.stop()


@pytest.fixture
async def operator(
    nats_url: str, policy: ValidationPolicy, request: pytest.FixtureRequest
) -> AsyncIterator[Operator]:
    limits = getattr(request, "param", LIMITS)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_jetstream(js)
    await ensure_operator_consumer(js)
    store = MemoryStore()
    # The workers run the synthetic engine: its model is the default, as the chart makes the one it serves.
    served_model = policy.model_copy(update={"default_model": "synthetic"})
    runner = Runner(store, nc, js, limits=limits, policy=served_model, batch_seconds=0)
    running = Operator(store, runner, nc, js)

    async def tick() -> None:  # what kopf's timer (or local mode's driver) does
        while True:
            await asyncio.sleep(0.5)
            for workflow in await store.list():
                await runner.handle(Tick(), workflow=workflow)

    tasks = [
        asyncio.create_task(EventsConsumer(js, runner, fetch_timeout=0.3).run()),
        asyncio.create_task(tick()),
    ]
    yield running
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runner.close()
    await nc.close()


async def submit(operator: Operator, name: str, text: str = "hello there") -> None:
    body = spec()
    body["workflowConfig"]["indexttsConfig"].update(
        text=text, outputPath=f"/share/workflows/output/{name}.wav"
    )
    await operator.runner.handle(Created(), workflow=operator.store.add(name, body))


async def busy_pods(js: JetStreamContext) -> list[str]:
    """The pods whose worker holds a job now, by the worker registry."""
    bucket = await js.key_value(WORKERS_BUCKET)
    pods = []
    with contextlib.suppress(Exception):  # no keys yet
        for key in await bucket.keys():
            entry = await bucket.get(key)
            if entry.value and decode_entry(entry.value).state == "busy":
                pods.append(decode_entry(entry.value).pod)
    return pods


async def completed_events(js: JetStreamContext) -> list[CompletedEvent]:
    """Every completed event in the events stream."""
    subscription = await js.subscribe(
        "tts.events.*.completed",
        stream=EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.ALL,
    )
    events: list[CompletedEvent] = []
    with contextlib.suppress(TimeoutError, nats.errors.TimeoutError):
        while True:  # until none is left: the stream is written no more
            event = decode_event((await subscription.next_msg(timeout=1.0)).data)
            assert isinstance(event, CompletedEvent)
            events.append(event)
    await subscription.unsubscribe()
    return events


async def test_workers_killed_under_load_spend_no_attempt_and_every_workflow_succeeds_once(
    operator: Operator, fleet: Fleet, share: Path
) -> None:
    for _ in range(3):
        fleet.spawn()
    names = [f"churn-{n}" for n in range(30)]
    for name in names:
        await submit(operator, name)
    kills = 0
    for step in range(600):  # at most 60 s; ends as soon as every workflow has finished
        if operator.all_finished():
            break
        if kills < 8 and step % 5 == 4:  # a kill every half second, of a worker that holds a job
            # The registry still lists a killed pod as busy until its entry lapses: skip those.
            busy = [pod for pod in await busy_pods(operator.js) if pod in fleet.processes]
            if busy and fleet.kill(busy[0]):
                kills += 1
        await asyncio.sleep(0.1)
    phases = operator.phases()
    assert set(phases.values()) == {"Succeeded"}, {
        name: operator.store.status(name).get("error")
        for name, phase in phases.items()
        if phase != "Succeeded"
    }
    statuses = [operator.store.status(name) for name in names]
    lost = sum(status["stages"][0].get("workerLosses", 0) for status in statuses)
    assert kills >= 3
    assert lost >= 1, "no kill hit a job: the test proved nothing"
    for status in statuses:  # each dispatch ended by a lost worker, or by the one success
        assert status["stages"][0]["attempt"] == status["stages"][0].get("workerLosses", 0) + 1, status
    # Each workflow completed once: one completed event, of the attempt its status records.
    completed = await completed_events(operator.js)
    by_workflow: dict[str, list[Any]] = {}
    for event in completed:
        by_workflow.setdefault(event.workflow.name, []).append(event.attempt)
    assert by_workflow == {name: [operator.store.status(name)["stages"][0]["attempt"]] for name in names}
    for name in names:
        assert (share / "workflows" / "output" / f"{name}.wav").is_file()


@pytest.mark.parametrize("operator", [POISON_LIMITS], indirect=True)
async def test_a_job_that_kills_every_worker_it_lands_on_stops_saying_so(
    operator: Operator, fleet: Fleet
) -> None:
    for _ in range(2):
        fleet.spawn()
    await submit(operator, "poisoned", text=f"this one is a {POISON}")
    await submit(operator, "healthy")
    died = 0
    for _ in range(600):  # at most 60 s
        if operator.all_finished():
            break
        died += len(fleet.replace_the_dead())
        await asyncio.sleep(0.1)
    status = operator.store.status("poisoned")
    assert status.get("phase") == "Failed", status
    assert status["error"]["code"] == "PROCESSING_ERROR"
    losses = POISON_LIMITS.max_worker_losses
    assert (
        f"(gave up: {losses} workers were lost while running it; a job that stops every worker"
        in (status["error"]["message"])
    )
    assert status["stages"][0]["workerLosses"] == losses
    assert status["stages"][0]["attempt"] == losses
    await asyncio.sleep(1.0)
    died += len(fleet.replace_the_dead())
    assert died == losses  # each dispatch killed one worker, and none ran after it gave up
    assert operator.store.status("healthy").get("phase") == "Succeeded"
