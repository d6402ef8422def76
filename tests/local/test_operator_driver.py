"""Local mode's operator driver on a real NATS KV bucket: a workflow whose handling failed (NATS was
restarting under it) is handled again by the next tick, as kopf retries a handler that raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from gateway.backend import BackendUnavailableError
from local_mode.operator_driver import LocalDriver, LocalOperatorStore
from local_mode.record_store import LocalWorkflowStore
from nats_support.jetstream import ensure_jetstream
from nats_support.tasks import cancel_and_wait
from tests.operator.cluster import eventually
from tts_api.constants import Phase
from tts_api.messages import WorkflowRef
from tts_api.nats_names import JOBS_STREAM, JOBS_SUBJECTS
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflowSpec, TTSWorkflowStatus
from tts_operator.reconcile import Limits
from tts_operator.runner import Runner

SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})


class FailingFirstWrites(LocalOperatorStore):
    """The runner's store, whose first ``failures`` status writes fail as during a NATS restart."""

    def __init__(self, records: LocalWorkflowStore, failures: int) -> None:
        super().__init__(records)
        self.failures = failures

    async def patch_status(self, ref: WorkflowRef, patch: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise BackendUnavailableError("NATS is restarting")
        await super().patch_status(ref, patch)


async def test_a_workflow_whose_acceptance_failed_is_accepted_on_the_next_tick(
    nats_client: Client, store: LocalWorkflowStore, policy: ValidationPolicy
) -> None:
    js = nats_client.jetstream()
    await ensure_jetstream(js)
    operator_store = FailingFirstWrites(store, failures=1)
    runner = Runner(operator_store, nats_client, js, limits=Limits(), policy=policy, batch_seconds=0)
    driver = LocalDriver(store, operator_store, runner, tick_seconds=0.2)
    running = asyncio.create_task(driver.run())
    try:
        await store.create("wf-1", SPEC)

        async def accepted() -> bool:
            found = await store.get("wf-1")
            return found is not None and found.status.accepted_at is not None

        await eventually(accepted, within=15, what="wf-1 accepted")
        assert operator_store.failures == 0  # the watch's attempt failed; a tick's succeeded

        async def queued() -> bool:
            return (await js.stream_info(JOBS_STREAM)).state.messages == 1

        await eventually(queued, within=15, what="its job queued")
    finally:
        await cancel_and_wait(running)
        await runner.close()


async def test_a_record_whose_deletion_failed_is_deleted_once_nats_answers(
    nats_client: Client, store: LocalWorkflowStore, policy: ValidationPolicy
) -> None:
    js = nats_client.jetstream()
    await ensure_jetstream(js)
    deleted: list[str] = []
    failures = [1]

    async def on_deleted(workflow: Any) -> None:
        deleted.append(workflow.ref.name)

    operator_store = LocalOperatorStore(store, on_deleted=on_deleted)
    purge = store.purge

    async def flaky_purge(name: str) -> None:
        if failures[0]:
            failures[0] -= 1
            raise BackendUnavailableError("NATS is restarting")
        await purge(name)

    store.purge = flaky_purge  # type: ignore[method-assign]
    runner = Runner(operator_store, nats_client, js, limits=Limits(), policy=policy, batch_seconds=0)
    driver = LocalDriver(store, operator_store, runner, tick_seconds=0.2)
    running = asyncio.create_task(driver.run())
    try:
        await store.create("wf-1", SPEC)
        await store.delete("wf-1")

        async def gone() -> bool:
            return await store.read_body("wf-1") is None

        await eventually(gone, within=15, what="wf-1 purged")
        assert failures == [0]
        assert "wf-1" in deleted
    finally:
        await cancel_and_wait(running)
        await runner.close()


async def test_a_tick_reads_only_the_records_that_need_one(
    nats_client: Client, store: LocalWorkflowStore, policy: ValidationPolicy
) -> None:
    """Finished records are not read again until their time to live runs out: a tick costs what the
    work in hand costs, however many records are kept."""
    js = nats_client.jetstream()
    await ensure_jetstream(js)
    operator_store = LocalOperatorStore(store)
    runner = Runner(operator_store, nats_client, js, limits=Limits(), policy=policy, batch_seconds=0)
    driver = LocalDriver(store, operator_store, runner, tick_seconds=3600)  # ticks called by hand
    finished_at = datetime.now(UTC) - timedelta(seconds=60)
    kept = [f"kept-{n}" for n in range(20)]
    for name in [*kept, "expired"]:
        spec = SPEC.model_copy(update={"ttl_seconds_after_finished": 30 if name == "expired" else 3600})
        await store.create(name, spec)
        stored = await store.read(name)
        assert stored is not None
        done = TTSWorkflowStatus(phase=Phase.SUCCEEDED, finished_at=finished_at, updated_at=finished_at)
        await store.replace_status(name, done, revision=stored.revision)
    running = asyncio.create_task(driver.run())
    try:
        await store.create("live", SPEC)

        async def all_seen() -> bool:
            return driver.scheduled == len(kept) + 2

        await eventually(all_seen, within=15, what="every record seen by the watch")
        read: list[str] = []
        read_body = store.read_body

        async def counting_read_body(name: str) -> Any:
            read.append(name)
            return await read_body(name)

        store.read_body = counting_read_body  # type: ignore[method-assign]
        await driver.tick()
        assert "expired" in read
        assert "live" in read
        assert not set(read) & set(kept)  # not one of the finished records still within its time

        async def expired_gone() -> bool:
            return await read_body("expired") is None

        await eventually(expired_gone, within=15, what="the expired record deleted")
        assert [name for name in kept if await read_body(name) is None] == []

        async def forgotten() -> bool:
            return driver.scheduled == len(kept) + 1

        await eventually(forgotten, within=15, what="the deleted record dropped from the schedule")
    finally:
        await cancel_and_wait(running)
        await runner.close()


async def test_a_new_driver_resumes_the_records_it_finds(
    nats_client: Client, store: LocalWorkflowStore, policy: ValidationPolicy
) -> None:
    """A restarted stack: workflows accepted and queued before are resumed from the first values of
    the watch (each job announced again, JetStream dropping the copies of what landed), not left
    for a tick."""
    js = nats_client.jetstream()
    await ensure_jetstream(js)
    announced: list[str] = []

    async def seen(message: Msg) -> None:
        announced.append(message.subject)

    spy = await nats_client.subscribe(JOBS_SUBJECTS, cb=seen)
    for attempt in ("first", "restarted"):
        announced.clear()
        operator_store = LocalOperatorStore(store)
        runner = Runner(operator_store, nats_client, js, limits=Limits(), policy=policy, batch_seconds=0)
        driver = LocalDriver(store, operator_store, runner, tick_seconds=3600)  # no tick comes
        running = asyncio.create_task(driver.run())
        try:
            if attempt == "first":
                for number in range(5):
                    await store.create(f"wf-{number}", SPEC)

            async def five() -> bool:
                return len(announced) == 5

            await eventually(five, within=15, what=f"every job announced ({attempt} driver)")
        finally:
            await cancel_and_wait(running)
            await runner.close()
    await spy.unsubscribe()
    assert (await js.stream_info(JOBS_STREAM)).state.messages == 5  # each job once
