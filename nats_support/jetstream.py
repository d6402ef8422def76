"""The JetStream streams and bucket every component relies on, created idempotently.

The operator, the inference pods and local mode all call :func:`ensure_jetstream` at start: the
first creates, the others find the same configuration. Consumers belong to their readers (the
workers' pull consumers, one per model and one for output deletions, here for ``inference_pod``;
the operator's event consumer in ``tts_operator``).

Replicas: in a JetStream cluster each stream and the bucket keep ``replicas`` copies of every message
on as many servers, so that losing one server loses nothing and stops nothing. One process owns that
number, the operator (``TTS_OPERATOR_NATS_REPLICAS``, the chart's ``nats.replicas``): it passes it,
and the streams are brought to it. The others pass none and keep what they find (1 for a stream they
create first, which the operator then scales up), so that no two processes pull the count two ways.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError
from nats.js.kv import KeyValue

from tts_api.constants import TaskName
from tts_api.nats_names import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    JOBS_STREAM,
    JOBS_SUBJECTS,
    LEGACY_WORKERS_CONSUMER,
    VOICES_BUCKET,
    WORKERS_BUCKET,
    legacy_job_subject,
    model_jobs_subjects,
    workers_consumer,
)
from tts_api.output_deletion import OUTPUT_CLEANUP_CONSUMER, OUTPUT_DELETION_SUBJECT
from tts_api.registry import WORKER_ENTRY_TTL_SECONDS

log = logging.getLogger(__name__)
T = TypeVar("T")

# JetStream's error code for "stream name already in use with a different configuration".
STREAM_EXISTS_OTHERWISE = 10058

# The workers' ack deadline, unless TTS_WORKER_ACK_WAIT_SECONDS says otherwise: the one a model's
# consumer gets when the operator creates it before any worker of that model has started.
WORKERS_ACK_WAIT_SECONDS = 30.0

# How long JetStream remembers a Nats-Msg-Id: a dispatch replayed within it is dropped.
DEDUPLICATION_WINDOW_SECONDS = 3600.0
# Events are read within seconds by the operator; a day covers a long operator outage.
EVENTS_MAX_AGE_SECONDS = 24 * 3600.0


class JetStreamSetupError(RuntimeError):
    """The NATS server refused the streams' configuration (e.g. more replicas than servers)."""


def jobs_stream(replicas: int = 1) -> StreamConfig:
    """Jobs: a work queue, each message taken by exactly one worker, kept until acknowledged."""
    return StreamConfig(
        name=JOBS_STREAM,
        description="TTSWorkflow stage attempts waiting for an inference pod",
        subjects=[JOBS_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=DEDUPLICATION_WINDOW_SECONDS,
        num_replicas=replicas,
    )


def events_stream(replicas: int = 1) -> StreamConfig:
    """Worker events: kept for a day so that an operator that was down reads what it missed."""
    return StreamConfig(
        name=EVENTS_STREAM,
        description="Started, heartbeat, progress, completed and failed events from inference pods",
        subjects=[EVENTS_SUBJECTS],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=EVENTS_MAX_AGE_SECONDS,
        duplicate_window=120.0,
        num_replicas=replicas,
    )


def workers_bucket(replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=WORKERS_BUCKET,
        description="One entry per inference worker: its state, GPU and job in hand",
        ttl=WORKER_ENTRY_TTL_SECONDS,
        storage=StorageType.MEMORY,
        replicas=replicas,
    )


def voices_bucket(replicas: int = 1) -> KeyValueConfig:
    return KeyValueConfig(
        bucket=VOICES_BUCKET,
        description="The voice library: one entry per voice, its clip on the shared volume",
        storage=StorageType.FILE,
        replicas=replicas,
    )


def _work_queue_consumer(name: str, subject: str, *, ack_wait: float) -> ConsumerConfig:
    """A durable pull consumer on the jobs queue: each message to one reader, acknowledged
    explicitly within ``ack_wait`` seconds (or redelivered), delivered without limit (the operator
    counts the attempts), any number in flight."""
    return ConsumerConfig(
        durable_name=name,
        filter_subject=subject,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_ack_pending=-1,
        max_deliver=-1,
    )


async def subscribe_workers(
    js: JetStreamContext, model: str, *, ack_wait: float
) -> JetStreamContext.PullSubscription:
    """The pull consumer the workers serving ``model`` share: the jobs for that model, and only them.
    One created before (by the operator, or under another setting) is brought to ``ack_wait``."""
    name = workers_consumer(model)
    config = _work_queue_consumer(name, model_jobs_subjects(model), ack_wait=ack_wait)
    subscription = await js.pull_subscribe(
        model_jobs_subjects(model), durable=name, stream=JOBS_STREAM, config=config
    )
    if (await subscription.consumer_info()).config.ack_wait != ack_wait:
        await js.add_consumer(JOBS_STREAM, config)  # an update: the same consumer, this deadline
    return subscription


async def ensure_model_consumers(js: JetStreamContext, models: Iterable[str]) -> None:
    """Create each model's workers' consumer if it is missing, so that it exists before any worker
    of that model does: an autoscaler reads the jobs waiting there (KEDA's ``nats-jetstream``
    scaler, on its ``num_pending`` and ``num_ack_pending``) to start the first one. An existing one
    is left as it is (its ack deadline is the one its first creator gave it)."""
    for model in models:
        name = workers_consumer(model)
        try:
            await js.consumer_info(JOBS_STREAM, name)
        except NotFoundError:
            config = _work_queue_consumer(name, model_jobs_subjects(model), ack_wait=WORKERS_ACK_WAIT_SECONDS)
            await js.add_consumer(JOBS_STREAM, config)
            log.info("created the JetStream consumer %s for model %s's jobs", name, model)


async def subscribe_output_cleanup(
    js: JetStreamContext, *, ack_wait: float
) -> JetStreamContext.PullSubscription:
    """The pull consumer every worker shares for deleted workflows' audio, whatever its model."""
    return await js.pull_subscribe(
        OUTPUT_DELETION_SUBJECT,
        durable=OUTPUT_CLEANUP_CONSUMER,
        stream=JOBS_STREAM,
        config=_work_queue_consumer(OUTPUT_CLEANUP_CONSUMER, OUTPUT_DELETION_SUBJECT, ack_wait=ack_wait),
    )


async def retire_legacy_consumer(js: JetStreamContext) -> bool:
    """Remove the one consumer every worker read every job through before jobs went by model, and
    the jobs still queued for it (``tts.jobs.<task>``): a work queue admits no consumer beside one
    whose filter covers every subject, and none reads those subjects any more. The operator queues
    each of those attempts again on its model's subject when it resumes (a new ``Nats-Msg-Id``, see
    :func:`tts_api.nats_names.dispatch_id`). True when there was one to remove."""
    try:
        info = await js.consumer_info(JOBS_STREAM, LEGACY_WORKERS_CONSUMER)
    except NotFoundError:
        return False
    if info.config.filter_subject not in (None, "", JOBS_SUBJECTS):
        return False  # a consumer of another kind under that name: not the one to retire
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(JOBS_STREAM, LEGACY_WORKERS_CONSUMER)
    for task in TaskName:
        await js.purge_stream(JOBS_STREAM, subject=legacy_job_subject(task))
    log.warning(
        "removed the JetStream consumer %s and its queued jobs, from a release that queued every "
        "model's jobs together; the operator queues them again by model as it resumes",
        LEGACY_WORKERS_CONSUMER,
    )
    return True


async def ensure_jetstream(js: JetStreamContext, replicas: int | None = None) -> KeyValue:
    """Create the streams and the buckets (workers, voices) if they are missing, or bring them to this
    release's configuration; return the workers' bucket.

    ``replicas``: how many copies the streams and the bucket keep (the operator's setting); ``None``
    keeps what each has (1 for one created here). A count the server cannot meet (more than its
    cluster's servers, or above 1 on a server without a cluster) raises :class:`JetStreamSetupError`
    saying so.
    """
    for name, config_for in ((JOBS_STREAM, jobs_stream), (EVENTS_STREAM, events_stream)):
        config = config_for(replicas or await _replicas_of(js, name) or 1)
        try:
            await _refused_as_setup_error(js.add_stream(config), config.num_replicas or 1)
        except _ExistsOtherwiseError:
            # It exists with another configuration (an older release, another count): update it.
            log.info("updating JetStream stream %s to this release's configuration", name)
            await _refused_as_setup_error(js.update_stream(config), config.num_replicas or 1, update=True)
    await retire_legacy_consumer(js)
    await _ensure_bucket(js, VOICES_BUCKET, voices_bucket, replicas)
    return await _ensure_bucket(js, WORKERS_BUCKET, workers_bucket, replicas)


async def _ensure_bucket(
    js: JetStreamContext, name: str, config_for: Callable[[int], KeyValueConfig], replicas: int | None
) -> KeyValue:
    bucket_stream = f"KV_{name}"
    bucket = config_for(replicas or await _replicas_of(js, bucket_stream) or 1)
    try:
        return await _refused_as_setup_error(js.create_key_value(bucket), bucket.replicas)
    except _ExistsOtherwiseError:
        log.info("updating the JetStream bucket %s to %d replica(s)", name, bucket.replicas)
        current = (await js.stream_info(bucket_stream)).config
        current.num_replicas = bucket.replicas
        await _refused_as_setup_error(js.update_stream(current), bucket.replicas, update=True)
        return await js.key_value(name)


class _ExistsOtherwiseError(Exception):
    """The stream exists with another configuration."""


async def _replicas_of(js: JetStreamContext, stream: str) -> int | None:
    """The replicas of an existing stream; ``None`` when there is none."""
    try:
        return (await js.stream_info(stream)).config.num_replicas
    except NotFoundError:
        return None


async def _refused_as_setup_error(call: Awaitable[T], replicas: int, *, update: bool = False) -> T:
    """Await a stream call; a refusal that an update can mend raises :class:`_ExistsOtherwiseError`, any
    other one :class:`JetStreamSetupError` naming the replicas asked for."""
    try:
        return await call
    except ServiceUnavailableError:
        raise  # JetStream not up yet: the caller's start fails and is retried, as before
    except APIError as exc:
        if exc.err_code == STREAM_EXISTS_OTHERWISE and not update:
            raise _ExistsOtherwiseError from exc
        message = (
            f"NATS refused a JetStream stream with {replicas} replica(s): {exc.description} "
            f"(error {exc.err_code})"
        )
        if replicas > 1:
            message += (
                "; a stream keeps at most as many replicas as the NATS cluster has servers, and a "
                "server without a cluster keeps one: lower TTS_OPERATOR_NATS_REPLICAS (the chart's "
                "nats.replicas), or run that many servers"
            )
        raise JetStreamSetupError(message) from exc
