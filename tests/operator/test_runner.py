"""The runner and the events consumer over a real nats-server and an in-memory store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from nats_support.jetstream import ensure_jetstream
from tests.operator.builders import POLICY, SPEECH, completed, failed, heartbeat, spec, started
from tests.operator.cluster import eventually
from tests.operator.memory_store import MemoryStore
from tests.operator.scenarios import duplicates_dropped
from tts_api.errors import ErrorCode
from tts_api.messages import CancelMessage, WorkflowRef, decode_command, encode, make_job_id
from tts_api.nats_names import CANCEL_SUBJECT, EVENTS_STREAM, JOBS_STREAM, OPERATOR_CONSUMER, event_subject
from tts_operator import runner as runner_module
from tts_operator.events_consumer import EventsConsumer, ensure_operator_consumer
from tts_operator.reconcile import Created, Deleted, EventLevel, Limits, Resumed, Tick, WorkerEventInput
from tts_operator.runner import Runner
from tts_operator.store import workflow_from_body

BATCH = 0.3


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[tuple[NatsClient, JetStreamContext]]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await ensure_jetstream(context)
    yield nc, context
    await nc.close()


def make_runner(store: MemoryStore, nc: NatsClient, context: JetStreamContext) -> Runner:
    return Runner(store, nc, context, limits=Limits(), policy=POLICY, batch_seconds=BATCH)


class Acks:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self) -> None:
        self.count += 1


def as_event(event: object, name: str = "hello") -> WorkerEventInput:
    """Builders make events for REF (uid-1); re-address them to the store's workflow."""
    ref = WorkflowRef(uid=f"uid-{name}", name=name, namespace="default")
    moved = event.model_copy(  # type: ignore[attr-defined]
        update={"workflow": ref, "job_id": make_job_id(ref.uid, SPEECH, event.attempt)}  # type: ignore[attr-defined]
    )
    return WorkerEventInput(moved)


async def jobs_stored(context: JetStreamContext) -> int:
    return int((await context.stream_info(JOBS_STREAM)).state.messages)


async def test_status_first_then_the_job_whose_replay_jetstream_drops(
    js: tuple[NatsClient, JetStreamContext],
) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = make_runner(store, nc, context)
    await runner.handle(Created(), workflow=workflow)
    assert store.status("hello")["phase"] == "Queued"
    assert await jobs_stored(context) == 1
    # No model named, none configured, no registry to ask: the deployment's first model.
    message = await context.get_last_msg(JOBS_STREAM, "tts.jobs.indextts-2.generate_speech")
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == "uid-hello/generate_speech/1@indextts-2"
    # A re-run handler and a tick re-announce the same attempt: this process knows it landed.
    await runner.handle(Created(), workflow=workflow)
    await runner.handle(Tick(), workflow=workflow)
    assert await jobs_stored(context) == 1
    # A restarted process does not know: it re-publishes once, and JetStream drops the duplicate.
    dropped = duplicates_dropped()
    restarted = make_runner(store, nc, context)
    await restarted.handle(Resumed(), workflow=await store.get("default", "hello"))
    await restarted.handle(Tick(), workflow=await store.get("default", "hello"))
    assert await jobs_stored(context) == 1
    assert duplicates_dropped() == dropped + 1
    assert [reason for _, reason in store.events] == ["Accepted", "Dispatched"]


async def test_a_failed_status_write_does_nothing_else(js: tuple[NatsClient, JetStreamContext]) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = make_runner(store, nc, context)
    store.fail_patches = True
    with pytest.raises(ConnectionError):
        await runner.handle(Created(), workflow=workflow)
    assert await jobs_stored(context) == 0
    assert store.events == []
    store.fail_patches = False
    await runner.handle(Created(), workflow=workflow)  # kopf retries the handler
    assert await jobs_stored(context) == 1


async def test_heartbeats_are_batched_and_acknowledged_once_written(
    js: tuple[NatsClient, JetStreamContext],
) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = make_runner(store, nc, context)
    await runner.handle(Created(), workflow=workflow)
    await runner.handle(as_event(started()), namespace="default", name="hello")
    assert len(store.patches) == 2
    acks = Acks()
    for done in (1, 2, 3):
        await runner.handle(as_event(heartbeat(done=done)), namespace="default", name="hello", landed=acks)
    assert (len(store.patches), acks.count) == (2, 0)  # held
    await eventually(lambda: acks.count == 3, within=3, what="the batch was written")
    assert len(store.patches) == 3
    assert store.status("hello")["progress"] == 75
    await runner.close()


async def test_a_transition_writes_the_held_heartbeats_with_it(
    js: tuple[NatsClient, JetStreamContext],
) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = make_runner(store, nc, context)
    await runner.handle(Created(), workflow=workflow)
    await runner.handle(as_event(started()), namespace="default", name="hello")
    acks = Acks()
    await runner.handle(as_event(heartbeat(done=2)), namespace="default", name="hello", landed=acks)
    await runner.handle(as_event(completed()), namespace="default", name="hello", landed=acks)
    assert acks.count == 2
    assert len(store.patches) == 3
    status = store.status("hello")
    assert status["phase"] == "Succeeded"
    assert status["heartbeat"]["pod"] == "pod-1"
    await asyncio.sleep(BATCH * 2)
    assert len(store.patches) == 3  # nothing was left to flush
    await runner.close()


async def test_ticks_wait_until_the_events_backlog_is_read(js: tuple[NatsClient, JetStreamContext]) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    clock = [datetime.fromisoformat("2026-01-01T00:00:00+00:00")]
    runner = Runner(
        store, nc, context, limits=Limits(heartbeat_stale_seconds=30), policy=POLICY, clock=lambda: clock[0]
    )
    await runner.handle(Created(), workflow=workflow)
    await runner.handle(as_event(started()), namespace="default", name="hello")
    clock[0] = clock[0].replace(minute=5)
    runner.events_caught_up = False
    decision = await runner.handle(Tick(), workflow=workflow)
    assert decision.ignored is not None
    assert store.status("hello")["phase"] == "Running"
    runner.events_caught_up = True
    await runner.handle(Tick(), workflow=workflow)
    assert store.status("hello")["stages"][0]["attempt"] == 2
    await runner.close()


async def test_the_durable_consumer_reads_events_sent_while_the_operator_was_down(
    js: tuple[NatsClient, JetStreamContext],
) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = make_runner(store, nc, context)
    await ensure_operator_consumer(context)
    await runner.handle(Created(), workflow=workflow)
    # The operator is "down": the worker's events wait in the stream; one unreadable message too.
    uid = workflow.ref.uid
    await context.publish(event_subject(uid, "junk"), b"not json")
    for given in (as_event(started()), as_event(heartbeat(done=1)), as_event(completed())):
        await context.publish(event_subject(uid, given.event.kind), encode(given.event))
    consumer = asyncio.create_task(EventsConsumer(context, runner, fetch_timeout=0.5).run())
    try:
        await eventually(lambda: store.status("hello").get("phase") == "Succeeded", what="Succeeded")
        await eventually(lambda: runner.events_caught_up, what="caught up")
        info = await context.consumer_info(EVENTS_STREAM, OPERATOR_CONSUMER)
        assert info.num_pending == 0
        assert info.num_ack_pending == 0
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await runner.close()
    assert store.status("hello")["result"]["outputPath"] == "/share/workflows/output/hello.wav"


@pytest.mark.parametrize("then", ["retry-published", "deleted-meanwhile"])
async def test_a_retry_is_published_after_its_backoff_unless_superseded(
    then: str, js: tuple[NatsClient, JetStreamContext]
) -> None:
    nc, context = js
    store = MemoryStore()
    workflow = store.add("hello", spec())
    runner = Runner(
        store, nc, context, limits=Limits(backoff_base_seconds=0.3), policy=POLICY, batch_seconds=BATCH
    )
    await runner.handle(Created(), workflow=workflow)
    oom = failed(code=ErrorCode.INSUFFICIENT_MEMORY, retryable=True)
    await runner.handle(as_event(oom), namespace="default", name="hello")
    assert store.status("hello")["stages"][0]["attempt"] == 2
    assert await jobs_stored(context) == 1  # not yet: the backoff runs
    if then == "deleted-meanwhile":
        current = await store.get("default", "hello")
        assert current is not None
        await runner.handle(Deleted(), workflow=current)
    await asyncio.sleep(0.6)
    assert await jobs_stored(context) == (2 if then == "retry-published" else 1)
    await runner.close()


@pytest.mark.parametrize("runner_kind", ["the runner that accepted it", "a restarted runner"])
async def test_the_next_tick_brings_an_edited_specs_generation_to_the_core(
    runner_kind: str, js: tuple[NatsClient, JetStreamContext]
) -> None:
    """The runner keeps its own status of a workflow, but spec and generation come from each body."""
    nc, context = js
    cancels: list[CancelMessage] = []

    async def on_cancel(message: Msg) -> None:
        command = decode_command(message.data)
        assert isinstance(command, CancelMessage)
        cancels.append(command)

    await nc.subscribe(CANCEL_SUBJECT, cb=on_cancel)
    store = MemoryStore()
    store.add("hello", spec())
    body = store.bodies[("default", "hello")]
    body["metadata"]["generation"] = 1  # as the API server sets it on create
    runner = make_runner(store, nc, context)
    await runner.handle(Created(), workflow=workflow_from_body(body))
    await runner.handle(as_event(started()), namespace="default", name="hello")
    assert (store.status("hello")["phase"], store.status("hello")["observedGeneration"]) == ("Running", 1)

    # kubectl edit on a server without CEL rules: the spec changes, the generation goes up.
    edited = spec()
    edited["workflowConfig"]["indexttsConfig"]["text"] = "a different text"
    body["spec"], body["metadata"]["generation"] = edited, 2
    if runner_kind == "a restarted runner":
        await runner.close()
        runner = make_runner(store, nc, context)
    # kopf's timer passes the body it holds, which carries the edit.
    decision = await runner.handle(Tick(), workflow=await store.get("default", "hello"))

    assert decision.status is not None
    status = store.status("hello")
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 2
    assert status["error"]["code"] == "INVALID_INPUT"
    assert "(generation 2, accepted at 1)" in status["error"]["message"]
    assert "create a new TTSWorkflow" in status["error"]["message"]
    failed_condition = next(c for c in status["conditions"] if c["type"] == "Failed")
    assert (failed_condition["status"], failed_condition["reason"]) == ("True", "SpecChanged")
    assert store.events[-1] == ("hello", "SpecChanged")
    await eventually(lambda: len(cancels) == 1, within=3, what="the running job was cancelled")
    assert cancels[0].job_id == "uid-hello/generate_speech/1"
    await runner.close()


async def test_memory_holds_the_work_in_hand_not_every_finished_workflow(
    js: tuple[NatsClient, JetStreamContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    nc, context = js
    store = MemoryStore()
    runner = make_runner(store, nc, context)
    names = [f"wf{n}" for n in range(40)]
    for name in names:
        await runner.handle(Created(), workflow=store.add(name, spec()))
        await runner.handle(as_event(started(), name), namespace="default", name=name)
    assert runner.held == 40  # running: each one's latest status is held
    for name in names:
        await runner.handle(as_event(completed(), name), namespace="default", name=name)
    assert {store.status(name)["phase"] for name in names} == {"Succeeded"}
    assert runner.held == 40  # just finished: a body from before the finish may still arrive
    monkeypatch.setattr(runner_module, "FINISHED_MEMORY_SECONDS", 0.0)
    late = workflow_from_body(store.bodies[("default", "wf0")])
    await runner.handle(Tick(), workflow=late)  # any later call lets go of them
    assert runner.held == 0
    for name in names:  # ticks of finished workflows (their time to live) hold nothing
        await runner.handle(Tick(), workflow=workflow_from_body(store.bodies[("default", name)]))
    assert runner.held == 0
    await runner.close()


@pytest.mark.parametrize(
    ("level", "posted"),
    [
        (
            "all",
            {
                "ok": ["Accepted", "Dispatched", "Started", "Succeeded"],
                "bad": ["Accepted", "Dispatched", "Started", "Failed"],
            },
        ),
        ("warnings", {"ok": [], "bad": ["Failed"]}),
        ("none", {"ok": [], "bad": []}),
    ],
)
async def test_events_are_posted_at_the_level_asked(
    js: tuple[NatsClient, JetStreamContext], level: EventLevel, posted: dict[str, list[str]]
) -> None:
    """Each Event is an API write: by default only failures and retries are posted."""
    nc, context = js
    store = MemoryStore()
    runner = Runner(store, nc, context, limits=Limits(), policy=POLICY, batch_seconds=0, events=level)
    for name in ("ok", "bad"):
        await runner.handle(Created(), workflow=store.add(name, spec()))
        await runner.handle(as_event(started(), name), namespace="default", name=name)
    await runner.handle(as_event(completed(), "ok"), namespace="default", name="ok")
    await runner.handle(as_event(failed(), "bad"), namespace="default", name="bad")
    assert store.status("ok")["phase"] == "Succeeded"
    assert store.status("bad")["phase"] == "Failed"
    for name, reasons in posted.items():
        assert [reason for who, reason in store.events if who == name] == reasons
    await runner.close()
