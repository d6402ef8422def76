"""One operator process's parts, wired: NATS, the store, the runner, the events consumer and the
view of which models the workers serve."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import nats
from nats.aio.client import Client as NatsClient

from nats_support.jetstream import ensure_jetstream, ensure_model_consumers
from nats_support.tasks import cancel_and_wait
from tts_api.policy import ValidationPolicy
from tts_api.speech_models import KNOWN_MODELS
from tts_operator.events_consumer import EventsConsumer, ensure_operator_consumer
from tts_operator.runner import Runner
from tts_operator.settings import Settings
from tts_operator.store import WorkflowStore
from tts_operator.worker_models import ServedModels

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    nc: NatsClient
    runner: Runner
    consumer_task: asyncio.Task[None]
    registry_task: asyncio.Task[None]

    @classmethod
    async def start(cls, settings: Settings, store: WorkflowStore, policy: ValidationPolicy) -> Runtime:
        """Connect and start reading events; specs are checked with ``policy`` (read at process start)."""
        nc = await nats.connect(
            settings.nats_url, name="indextts-operator", max_reconnect_attempts=-1, connect_timeout=5
        )
        js = nc.jetstream()
        workers = await ensure_jetstream(js, replicas=settings.nats_replicas or None)
        await ensure_operator_consumer(js)
        # Each model's consumer exists before its first worker does: an autoscaler counts the jobs
        # waiting there to start that worker.
        await ensure_model_consumers(js, policy.models or KNOWN_MODELS)
        served = ServedModels(workers, connected=lambda: nc.is_connected)
        registry_task = asyncio.create_task(served.run(), name="tts-operator-worker-registry")
        runner = Runner(
            store,
            nc,
            js,
            limits=settings.limits(),
            policy=policy,
            batch_seconds=settings.heartbeat_batch_seconds,
            events=settings.events,
            served=served.models,
        )
        runner.events_caught_up = False  # ticks wait until the events backlog is read
        consumer = EventsConsumer(js, runner)
        task = asyncio.create_task(consumer.run(), name="tts-operator-events")
        log.info("operator connected to NATS at %s; reading worker events", settings.nats_url)
        return cls(settings, nc, runner, task, registry_task)

    async def stop(self) -> None:
        await cancel_and_wait(self.consumer_task)
        await cancel_and_wait(self.registry_task)
        await self.runner.close()
        with contextlib.suppress(Exception):
            await self.nc.drain()
