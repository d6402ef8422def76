"""The operator's durable consumer of worker events: each event is acknowledged once the status it
leads to is written, so events sent while the operator is down, or whose write failed, are read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from nats_support.tasks import cancel_and_wait
from tts_api.messages import MessageError, decode_event
from tts_api.nats_names import (
    EVENTS_STREAM,
    EVENTS_SUBJECT_PREFIX,
    EVENTS_SUBJECTS,
    JOBS_STREAM,
    OPERATOR_CONSUMER,
)
from tts_operator import metrics
from tts_operator.reconcile import WorkerEventInput
from tts_operator.runner import Runner

log = logging.getLogger(__name__)

# An unacknowledged event is delivered again after this long: one whose status could not be written,
# or one lost in a pull that expired as the server sent it (a known race of pull consumers). Events
# are idempotent, so a redelivery of one that was in fact applied does no harm.
ACK_WAIT_SECONDS = 5.0
RETRY_DELAY_SECONDS = 1.0


def operator_consumer() -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=OPERATOR_CONSUMER,
        description="The operator: worker events to TTSWorkflow status",
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_SECONDS,
        filter_subject=EVENTS_SUBJECTS,
        max_ack_pending=10_000,
    )


async def ensure_operator_consumer(js: JetStreamContext) -> None:
    """Create the durable consumer (idempotent: the same configuration is accepted again)."""
    await js.add_consumer(EVENTS_STREAM, operator_consumer())


def workflow_token(subject: str) -> str:
    """The workflow uid in an event's subject, ``tts.events.<uid>.<kind>`` (the subject itself when
    it does not have that form: such a message is then handled on its own)."""
    prefix = EVENTS_SUBJECT_PREFIX + "."
    return subject.removeprefix(prefix).split(".", 1)[0] if subject.startswith(prefix) else subject


class EventsConsumer:
    """Pulls worker events in batches and hands each to the runner, in order."""

    def __init__(
        self, js: JetStreamContext, runner: Runner, *, batch: int = 64, fetch_timeout: float = 5.0
    ) -> None:
        self._js = js
        self._runner = runner
        self._batch = batch
        self._fetch_timeout = fetch_timeout

    async def run(self) -> None:
        """Until cancelled."""
        subscription = await self._js.pull_subscribe_bind(durable=OPERATOR_CONSUMER, stream=EVENTS_STREAM)
        gauges = asyncio.create_task(self._update_gauges())
        try:
            while True:
                try:
                    messages = await subscription.fetch(self._batch, timeout=self._fetch_timeout)
                except TimeoutError:  # nats.errors.TimeoutError, or asyncio's from a batch fetch
                    self._runner.events_caught_up = True
                    continue
                await self.handle_batch(messages)
                if len(messages) < self._batch:
                    # The backlog (events sent while this operator was down) has been read.
                    self._runner.events_caught_up = True
        finally:
            await cancel_and_wait(gauges)
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def handle_batch(self, messages: list[Msg]) -> None:
        """Each workflow's events in order; different workflows' at once (the runner locks each
        workflow), so a busy operator does not apply a thousand workflows' events one by one."""
        by_workflow: dict[str, list[Msg]] = {}
        for message in messages:
            by_workflow.setdefault(workflow_token(message.subject), []).append(message)

        async def in_order(batch: list[Msg]) -> None:
            for message in batch:
                await self.handle(message)

        await asyncio.gather(*(in_order(batch) for batch in by_workflow.values()))

    async def handle(self, message: Msg) -> None:
        try:
            event = decode_event(message.data)
        except MessageError as exc:
            # Nothing can make it readable later: drop it, loudly.
            log.error("dropping an unreadable worker event on %s: %s", message.subject, exc)
            await message.term()
            return
        metrics.WORKER_EVENTS.labels(event.kind).inc()
        ref = event.workflow
        try:
            await self._runner.handle(
                WorkerEventInput(event), namespace=ref.namespace, name=ref.name, landed=message.ack
            )
        except Exception:
            log.exception(
                "could not apply %s event of %s; it will be read again",
                event.kind,
                event.job_id,
                extra={
                    "workflow_namespace": ref.namespace,
                    "workflow_name": ref.name,
                    "workflow_uid": ref.uid,
                },
            )
            with contextlib.suppress(Exception):
                await message.nak(delay=RETRY_DELAY_SECONDS)

    async def _update_gauges(self, every: float = 5.0) -> None:
        while True:
            try:
                consumer = await self._js.consumer_info(EVENTS_STREAM, OPERATOR_CONSUMER)
                metrics.EVENTS_PENDING.set(consumer.num_pending or 0)
                jobs = await self._js.stream_info(JOBS_STREAM)
                metrics.JOBS_WAITING.set(jobs.state.messages)
            except (TimeoutError, NotFoundError, nats.errors.Error) as exc:
                log.debug("queue gauges not updated: %s", exc)
            await asyncio.sleep(every)
