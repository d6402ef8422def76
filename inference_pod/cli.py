"""``indextts-k8s worker``: inference worker slots pulling jobs from NATS JetStream, one job per slot."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference_pod.settings import WorkerSettings
    from inference_pod.worker import Worker

HELP = "run an inference worker: pull TTS jobs from NATS JetStream and synthesize them"

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", help="NATS server (env TTS_WORKER_NATS_URL)")
    parser.add_argument(
        "--engine",
        choices=["auto", "espeak", "indextts2", "synthetic"],
        help="speech engine (env TTS_WORKER_ENGINE; auto: indextts2 when a checkpoint is set, else espeak)",
    )
    parser.add_argument("--slots", type=int, help="worker slots in this process (env TTS_WORKER_SLOTS)")
    parser.add_argument("--http-port", type=int, help="port of /healthz, /readyz, /metrics; 0 = off")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def run(args: argparse.Namespace) -> int:
    from inference_pod.engines.factory import SlotError, build_engine, engine_name, plan_slots
    from inference_pod.logs import configure_logging
    from inference_pod.metrics import WorkerMetrics
    from inference_pod.settings import WorkerSettings
    from inference_pod.worker import Worker
    from tts_api.policy import policy_from_env
    from voice_library.presets import PresetError, load_presets

    overrides = {
        key: value
        for key, value in {
            "nats_url": args.nats_url,
            "engine": args.engine,
            "slots": args.slots,
            "http_port": args.http_port,
        }.items()
        if value is not None
    }
    settings = WorkerSettings(**overrides)
    configure_logging(args.log_level)
    name = engine_name(settings)
    try:
        slots = plan_slots(name, _visible_gpus(name), settings.slots, settings.slot)
        presets = load_presets(settings.presets_file)
    except (SlotError, PresetError) as exc:
        log.error("%s", exc)
        return 2
    policy = policy_from_env()
    metrics = WorkerMetrics()
    workers = [
        Worker(
            settings=settings,
            policy=policy,
            engine=build_engine(settings, device=slot.device),
            presets=presets,
            slot=slot.name,
            gpu_index=slot.gpu_index,
            metrics=metrics,
        )
        for slot in slots
    ]
    return asyncio.run(_serve(settings, workers))


def _visible_gpus(engine: str) -> int:
    """CUDA devices this process sees (Kubernetes grants them per pod), when the engine uses them."""
    if engine != "indextts2":
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


async def _serve(settings: WorkerSettings, workers: list[Worker]) -> int:
    from inference_pod.health_server import HealthServer

    def stop_all() -> None:
        for worker in workers:
            worker.request_stop()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_all)
    server = None
    if settings.http_port:
        server = HealthServer(
            settings.http_host,
            settings.http_port,
            ready=lambda: all(worker.ready for worker in workers),
            alive=lambda: all(worker.alive() for worker in workers),
            registry=workers[0].metrics.registry,
        )
        await server.start()
    try:
        await asyncio.gather(*(worker.run() for worker in workers))
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                await server.stop()
    return 0
