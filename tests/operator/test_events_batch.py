"""The events consumer applies a batch per workflow in order, and different workflows at once."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from tts_api.constants import TaskName
from tts_api.messages import CompletedEvent, StartedEvent, WorkflowRef, encode, make_job_id
from tts_api.nats_names import event_subject
from tts_operator.events_consumer import EventsConsumer, workflow_token
from tts_operator.reconcile import WorkerEventInput


class FakeMessage:
    def __init__(self, event: StartedEvent | CompletedEvent) -> None:
        self.subject = event_subject(event.workflow.uid, event.kind)
        self.data = encode(event)
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


def event(uid: str, kind: str) -> StartedEvent | CompletedEvent:
    source: dict[str, Any] = {
        "job_id": make_job_id(uid, TaskName.GENERATE_SPEECH, 1),
        "workflow": WorkflowRef(uid=uid, name=f"wf-{uid}", namespace="default"),
        "task": TaskName.GENERATE_SPEECH,
        "attempt": 1,
        "pod": "pod-0",
        "worker_id": "pod-0/cpu0",
    }
    return StartedEvent(**source) if kind == "started" else CompletedEvent(**source, output={})


class RecordingRunner:
    """Holds workflow a's first event until workflow b's first event arrives."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.b_arrived = asyncio.Event()

    async def handle(self, given: WorkerEventInput, *, namespace: str, name: str, landed: Any) -> None:
        kind = given.event.kind
        if name == "wf-b":
            self.b_arrived.set()
        if (name, kind) == ("wf-a", "started"):
            await self.b_arrived.wait()  # a serial consumer would wait here for ever
        self.seen.append((name, kind))
        await landed()


@pytest.mark.parametrize(
    ("subject", "token"),
    [
        ("tts.events.uid-1.started", "uid-1"),
        ("tts.events.uid-1", "uid-1"),
        ("other.subject", "other.subject"),
    ],
)
def test_workflow_token(subject: str, token: str) -> None:
    assert workflow_token(subject) == token


async def test_each_workflow_in_order_and_workflows_at_once() -> None:
    runner = RecordingRunner()
    consumer = EventsConsumer(cast(Any, None), cast(Any, runner))
    messages = [
        FakeMessage(e)
        for e in (
            event("a", "started"),
            event("a", "completed"),
            event("b", "started"),
            event("b", "completed"),
        )
    ]
    await asyncio.wait_for(consumer.handle_batch(cast(Any, messages)), timeout=5)
    assert [kind for name, kind in runner.seen if name == "wf-a"] == ["started", "completed"]
    assert [kind for name, kind in runner.seen if name == "wf-b"] == ["started", "completed"]
    assert runner.seen.index(("wf-b", "started")) < runner.seen.index(("wf-a", "started"))
    assert all(message.acked for message in messages)
