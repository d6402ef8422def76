"""``indextts-k8s worker``: one inference worker slot, pulling jobs from NATS JetStream."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference_pod.engines.base import Engine
    from inference_pod.presets import Presets
    from inference_pod.settings import WorkerSettings
    from tts_api.policy import ValidationPolicy

HELP = "run an inference worker: pull TTS jobs from NATS JetStream and synthesize them"

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", help="NATS server (env TTS_WORKER_NATS_URL)")
    parser.add_argument(
        "--engine",
        choices=["auto", "espeak", "indextts2", "synthetic"],
        help="speech engine (env TTS_WORKER_ENGINE; auto: indextts2 when a checkpoint is set, else espeak)",
    )
    parser.add_argument("--slot", help="worker slot name, e.g. gpu0 or cpu0 (env TTS_WORKER_SLOT)")
    parser.add_argument("--http-port", type=int, help="port of /healthz, /readyz, /metrics; 0 = off")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")


def run(args: argparse.Namespace) -> int:
    from inference_pod.engines.factory import build_engine, default_slot, engine_name
    from inference_pod.logs import configure_logging
    from inference_pod.presets import PresetError, load_presets
    from inference_pod.settings import WorkerSettings
    from tts_api.policy import policy_from_env

    overrides = {
        key: value
        for key, value in {
            "nats_url": args.nats_url,
            "engine": args.engine,
            "slot": args.slot,
            "http_port": args.http_port,
        }.items()
        if value is not None
    }
    settings = WorkerSettings(**overrides)
    gpu_index = _visible_gpu_index(engine_name(settings))
    slot = settings.slot or default_slot(engine_name(settings), gpu_index)
    configure_logging(args.log_level, worker_id=settings.worker_id(slot))
    try:
        presets = load_presets(settings.presets_file)
    except PresetError as exc:
        log.error("%s", exc)
        return 2
    engine = build_engine(settings)
    return asyncio.run(_serve(settings, policy_from_env(), engine, presets, slot, gpu_index))


def _visible_gpu_index(name: str) -> int | None:
    """GPU 0 of what this process sees (Kubernetes grants one GPU per pod), when the engine uses one."""
    if name != "indextts2":
        return None
    import torch

    return 0 if torch.cuda.is_available() else None


async def _serve(
    settings: WorkerSettings,
    policy: ValidationPolicy,
    engine: Engine,
    presets: Presets,
    slot: str,
    gpu_index: int | None,
) -> int:
    from inference_pod.health_server import HealthServer
    from inference_pod.worker import Worker

    worker = Worker(
        settings=settings,
        policy=policy,
        engine=engine,
        presets=presets,
        slot=slot,
        gpu_index=gpu_index,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, worker.request_stop)
    server = None
    if settings.http_port:
        server = HealthServer(
            settings.http_host,
            settings.http_port,
            ready=lambda: worker.ready,
            alive=worker.alive,
            registry=worker.metrics.registry,
        )
        await server.start()
    try:
        await worker.run()
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                await server.stop()
    return 0
