"""Local mode's records in a real NATS KV bucket: created like the API server would, written with
optimistic concurrency, and waited on without polling."""

from __future__ import annotations

import asyncio

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from local_mode.record_store import (
    LOCAL_NAMESPACE,
    LocalWorkflowStore,
    RecordConflictError,
    RecordExistsError,
)
from tests.operator.cluster import eventually
from tts_api.constants import Phase, StageState, TaskName
from tts_api.resource import StageStatus, TTSWorkflow, TTSWorkflowSpec, TTSWorkflowStatus

SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})


def finished(workflow: TTSWorkflow) -> bool:
    return workflow.status.phase.finished


async def test_create_fills_in_what_an_api_server_would(store: LocalWorkflowStore) -> None:
    created = await store.create("wf-1", SPEC)
    assert created.metadata.namespace == LOCAL_NAMESPACE
    assert created.metadata.uid
    assert created.metadata.generation == 1
    assert created.metadata.creationTimestamp is not None
    assert await store.get("wf-1") == created
    other = await store.create("wf-2", SPEC)
    assert other.metadata.uid != created.metadata.uid
    assert sorted(w.metadata.name for w in await store.list()) == ["wf-1", "wf-2"]


async def test_a_name_is_taken_once(store: LocalWorkflowStore) -> None:
    await store.create("wf-1", SPEC)
    with pytest.raises(RecordExistsError, match="wf-1"):
        await store.create("wf-1", SPEC)


async def test_status_writes_need_the_current_revision(store: LocalWorkflowStore) -> None:
    await store.create("wf-1", SPEC)
    stored = await store.read("wf-1")
    assert stored is not None
    revision = await store.replace_status(
        "wf-1", TTSWorkflowStatus(phase=Phase.QUEUED), revision=stored.revision
    )
    with pytest.raises(RecordConflictError):
        await store.replace_status("wf-1", TTSWorkflowStatus(phase=Phase.FAILED), revision=stored.revision)
    await store.replace_status("wf-1", TTSWorkflowStatus(phase=Phase.RUNNING), revision=revision)
    current = await store.get("wf-1")
    assert current is not None
    assert current.status.phase is Phase.RUNNING
    assert current.spec == SPEC


async def test_missing_records(store: LocalWorkflowStore) -> None:
    assert await store.get("nope") is None
    assert await store.list() == []
    assert not await store.delete("nope")
    with pytest.raises(RecordConflictError, match="no longer exists"):
        await store.replace_status("nope", TTSWorkflowStatus(), revision=1)


@pytest.mark.parametrize("name", ["a b", "wf-1*", "wf>", ""])
async def test_a_name_that_cannot_be_a_key_has_no_record(name: str, store: LocalWorkflowStore) -> None:
    await store.create("wf-1", SPEC)
    assert await store.read_body(name) is None
    assert await store.get(name) is None
    assert not await store.delete(name)
    assert await store.get("wf-1") is not None


async def test_delete_marks_the_record_and_purge_removes_it(store: LocalWorkflowStore) -> None:
    await store.create("wf-1", SPEC)
    assert await store.delete("wf-1")
    marked = await store.get("wf-1")
    assert marked is not None  # like an object with a finalizer: still there, marked
    assert (marked.metadata.model_extra or {}).get("deletionTimestamp")
    assert await store.delete("wf-1")  # asking twice is fine
    await store.purge("wf-1")
    assert await store.get("wf-1") is None
    await store.create("wf-1", SPEC)  # the name is free again


async def test_wait_wakes_on_the_change_it_waits_for(store: LocalWorkflowStore) -> None:
    await store.create("wf-1", SPEC)

    async def progress() -> None:
        for phase in (Phase.QUEUED, Phase.RUNNING, Phase.SUCCEEDED):
            await asyncio.sleep(0.05)
            stored = await store.read("wf-1")
            assert stored is not None
            await store.replace_status("wf-1", TTSWorkflowStatus(phase=phase), revision=stored.revision)

    writer = asyncio.create_task(progress())
    done = await store.wait("wf-1", finished, wait_seconds=5)
    await writer
    assert done is not None
    assert done.status.phase is Phase.SUCCEEDED


async def test_wait_returns_at_once_when_already_true_and_the_latest_after_a_timeout(
    store: LocalWorkflowStore,
) -> None:
    await store.create("wf-1", SPEC)
    stored = await store.read("wf-1")
    assert stored is not None
    await store.replace_status("wf-1", TTSWorkflowStatus(phase=Phase.RUNNING), revision=stored.revision)
    running = await store.wait("wf-1", lambda w: w.status.phase is Phase.RUNNING, wait_seconds=5)
    assert running is not None
    assert running.status.phase is Phase.RUNNING
    latest = await store.wait("wf-1", finished, wait_seconds=0.2)
    assert latest is not None
    assert latest.status.phase is Phase.RUNNING
    assert await store.wait("absent", finished, wait_seconds=0.1) is None


async def test_many_waiters_share_one_watch(store: LocalWorkflowStore) -> None:
    names = [f"wf-{i}" for i in range(50)]
    for name in names:
        await store.create(name, SPEC)
    waits = [asyncio.create_task(store.wait(name, finished, wait_seconds=10)) for name in names]
    await asyncio.sleep(0.1)
    for name in names:
        stored = await store.read(name)
        assert stored is not None
        await store.replace_status(name, TTSWorkflowStatus(phase=Phase.SUCCEEDED), revision=stored.revision)
    results = await asyncio.gather(*waits)
    assert all(r is not None and r.status.phase is Phase.SUCCEEDED for r in results)
    assert store._waiters == {}


async def test_listing_every_record_costs_a_few_requests_not_one_per_record(
    store: LocalWorkflowStore, nats_client: Client
) -> None:
    """What the statistics and heartbeat views read: one watch of the bucket, whatever its size."""
    for number in range(60):
        await store.create(f"wf-{number}", SPEC)
    requests: list[str] = []

    async def seen(message: Msg) -> None:
        requests.append(message.subject)

    spy = await nats_client.subscribe("$JS.API.>", cb=seen)
    await nats_client.flush()
    listed = await store.list()
    await nats_client.flush()
    await spy.unsubscribe()
    assert len(listed) == 60
    assert not [subject for subject in requests if subject.startswith("$JS.API.DIRECT.GET")]
    assert len(requests) <= 10, requests  # a consumer made and deleted; 60 records, not 60 reads


async def test_a_listing_while_records_change_gives_each_record_once(store: LocalWorkflowStore) -> None:
    """Records written while they are listed come once each, as they were or as they became; one
    deleted before the listing does not come at all."""
    names = [f"wf-{number}" for number in range(40)]
    for name in names:
        await store.create(name, SPEC)
    await store.create("gone", SPEC)
    await store.purge("gone")
    listed: list[str] = []
    async for body in store.each_body():
        listed.append(body["metadata"]["name"])
        if len(listed) == 5:  # meanwhile, every record is written again, and one more made
            for name in names:
                stored = await store.read(name)
                assert stored is not None
                await store.replace_status(
                    name, TTSWorkflowStatus(phase=Phase.RUNNING), revision=stored.revision
                )
            await store.create("late", SPEC)
    assert len(listed) == len(set(listed))
    assert set(names) <= set(listed)
    assert "gone" not in listed


async def test_the_monitoring_tally_follows_the_records_and_reads_none_when_asked(
    store: LocalWorkflowStore, nats_client: Client
) -> None:
    for number in range(30):
        await store.create(f"wf-{number}", SPEC)
    stage = StageStatus(name=TaskName.HEALTH_CHECK, attempt=1, state=StageState.SUCCEEDED)
    for number in range(10):
        stored = await store.read(f"wf-{number}")
        assert stored is not None
        done = TTSWorkflowStatus(phase=Phase.SUCCEEDED, stages=[stage])
        await store.replace_status(f"wf-{number}", done, revision=stored.revision)
    assert (await store.tally()).succeeded == 10  # read once, from the first values of the watch

    requests: list[str] = []

    async def seen(message: Msg) -> None:
        requests.append(message.subject)

    spy = await nats_client.subscribe("$JS.API.>", cb=seen)
    await nats_client.flush()
    for _ in range(5):
        assert (await store.tally()).succeeded == 10
    await nats_client.flush()
    await spy.unsubscribe()
    assert requests == []  # the views read no record: the watch keeps the tally

    await store.purge("wf-0")
    running = TTSWorkflowStatus(
        phase=Phase.RUNNING, stages=[stage.model_copy(update={"state": StageState.RUNNING})]
    )
    stored = await store.read("wf-20")
    assert stored is not None
    await store.replace_status("wf-20", running, revision=stored.revision)

    async def followed() -> bool:
        tally = await store.tally()
        return tally.succeeded == 9 and [task.workflow_id for task in tally.active] == ["wf-20"]

    await eventually(followed, within=10, what="the purge and the new status in the tally")
