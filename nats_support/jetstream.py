"""The JetStream streams and bucket every component relies on, created idempotently.

The operator, the inference pods and local mode all call :func:`ensure_jetstream` at start: the
first creates, the others find the same configuration. Consumers belong to their readers (the
workers' pull consumer in ``inference_pod``, the operator's event consumer in ``tts_operator``).
"""

from __future__ import annotations

import logging

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from nats.js.kv import KeyValue

from tts_api.nats_names import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    JOBS_STREAM,
    JOBS_SUBJECTS,
    WORKERS_BUCKET,
    WORKERS_CONSUMER,
)
from tts_api.registry import WORKER_ENTRY_TTL_SECONDS

log = logging.getLogger(__name__)

# How long JetStream remembers a Nats-Msg-Id: a dispatch replayed within it is dropped.
DEDUPLICATION_WINDOW_SECONDS = 3600.0
# Events are read within seconds by the operator; a day covers a long operator outage.
EVENTS_MAX_AGE_SECONDS = 24 * 3600.0


def jobs_stream() -> StreamConfig:
    """Jobs: a work queue, each message taken by exactly one worker, kept until acknowledged."""
    return StreamConfig(
        name=JOBS_STREAM,
        description="TTSWorkflow stage attempts waiting for an inference pod",
        subjects=[JOBS_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DEDUPLICATION_WINDOW_SECONDS,
    )


def events_stream() -> StreamConfig:
    """Worker events: kept for a day so that an operator that was down reads what it missed."""
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Started, heartbeat, progress, completed and failed events from inference pods",
        subjects=[EVENTS_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=EVENTS_MAX_AGE_SECONDS,
        duplicate_window=120.0,
    )


def workers_bucket() -> KeyValueConfig:
    return KeyValueConfig(
        bucket=WORKERS_BUCKET,
        description="One entry per inference worker: its state, GPU and job in hand",
        ttl=WORKER_ENTRY_TTL_SECONDS,
        storage=StorageType.MEMORY,
    )


async def subscribe_workers(js: JetStreamContext, *, ack_wait: float) -> JetStreamContext.PullSubscription:
    """The inference workers' shared pull consumer on the jobs queue: each job to one worker,
    acknowledged explicitly within ``ack_wait`` seconds (or redelivered), delivered without limit
    (the operator counts the attempts), any number in flight."""
    return await js.pull_subscribe(
        JOBS_SUBJECTS,
        durable=WORKERS_CONSUMER,
        stream=JOBS_STREAM,
        config=ConsumerConfig(
            durable_name=WORKERS_CONSUMER,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait,
            max_ack_pending=-1,
            max_deliver=-1,
        ),
    )


async def ensure_jetstream(js: JetStreamContext) -> KeyValue:
    """Create the streams and the worker bucket if they are missing; return the bucket."""
    for config in (jobs_stream(), events_stream()):
        try:
            await js.add_stream(config)
        except BadRequestError:
            # It exists with another configuration (an older release): bring it up to date.
            log.info("updating JetStream stream %s to this release's configuration", config.name)
            await js.update_stream(config)
    return await js.create_key_value(workers_bucket())
