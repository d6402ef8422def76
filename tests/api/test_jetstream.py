"""The streams against a real nats-server: created idempotently, de-duplicating, work-queue semantics."""

from __future__ import annotations

import nats
from nats.js.api import StreamConfig

from nats_support.jetstream import ensure_jetstream, jobs_stream
from tts_api.constants import TaskName
from tts_api.messages import JobMessage, WorkflowRef, decode_command, encode, make_job_id
from tts_api.nats_names import JOBS_STREAM, WORKERS_BUCKET, job_subject


async def test_ensure_is_idempotent_and_updates_an_old_config(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        old = jobs_stream()
        await js.add_stream(StreamConfig(name=old.name, subjects=old.subjects, retention=old.retention))
        await ensure_jetstream(js)
        bucket = await ensure_jetstream(js)
        info = await js.stream_info(JOBS_STREAM)
        assert info.config.duplicate_window == jobs_stream().duplicate_window
        assert (await bucket.status()).bucket == WORKERS_BUCKET
    finally:
        await client.close()


async def test_a_replayed_dispatch_is_dropped_and_a_job_is_taken_once(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        await ensure_jetstream(js)
        workflow = WorkflowRef(uid="u1", name="hello", namespace="default")
        job = JobMessage(
            job_id=make_job_id(workflow.uid, TaskName.HEALTH_CHECK, 1),
            workflow=workflow,
            task=TaskName.HEALTH_CHECK,
            attempt=1,
        )
        first = await js.publish(
            job_subject("espeak", job.task), encode(job), headers={"Nats-Msg-Id": job.job_id}
        )
        again = await js.publish(
            job_subject("espeak", job.task), encode(job), headers={"Nats-Msg-Id": job.job_id}
        )
        assert not first.duplicate
        assert again.duplicate
        assert (await js.stream_info(JOBS_STREAM)).state.messages == 1

        consumer = await js.pull_subscribe(job_subject("espeak", job.task), durable="test-workers")
        [message] = await consumer.fetch(1, timeout=2)
        assert decode_command(message.data) == job
        await message.ack_sync()
        assert (await js.stream_info(JOBS_STREAM)).state.messages == 0  # work queue: gone once acked
    finally:
        await client.close()
