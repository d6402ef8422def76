"""``indextts-k8s local``: the whole stack on one machine, with no cluster (what `make dev` runs).

One process runs an embedded nats-server, an inference worker (espeak by default, IndexTTS2 when a
checkpoint is given), the operator's runner over a NATS KV record store, and the gateway on :8788.
The workflow API's ``/share/...`` paths map to a local folder. Ctrl-C stops everything in order: the gateway
stops taking requests, the worker finishes its job in hand, then the operator and NATS stop. A
nats-server that dies, or whose store failed a write (a full disk), is restarted on the same port and
store (:mod:`local_mode.nats_supervisor`); meanwhile the gateway answers 503 and ``/readyz`` is false.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from inference_pod.settings import EngineName

if TYPE_CHECKING:
    from local_mode.nats_supervisor import NatsSupervisor

HELP = "run the whole stack on this machine: NATS, a worker, the operator and the gateway on :8788"

log = logging.getLogger("indextts.local")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="gateway address (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8788, help="gateway port (default %(default)s, the workflow API's)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("var"),
        help="where NATS keeps its data and the shared folder lives (default ./%(default)s)",
    )
    parser.add_argument(
        "--share-dir",
        type=Path,
        default=None,
        help="the folder that /share/... paths map to (default DATA_DIR/share)",
    )
    parser.add_argument(
        "--engine",
        choices=get_args(EngineName),
        default="auto",
        help="speech engine (auto: indextts2 with --checkpoint, else espeak)",
    )
    parser.add_argument("--checkpoint", type=Path, default=None, help="an IndexTTS2 checkpoint directory")
    parser.add_argument("--presets", type=Path, default=None, help="a voice-preset file (YAML)")
    parser.add_argument(
        "--default-voice",
        type=Path,
        default=None,
        help="IndexTTS2: the voice (a .wav) of requests that name no reference_audio",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker slots (default %(default)s)")
    parser.add_argument("--nats-port", type=int, default=0, help="embedded NATS port (default: a free one)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("TTS_GATEWAY_API_KEY"),
        help="require this API key (env TTS_GATEWAY_API_KEY)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    for noisy in ("nats", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("nats.aio.client").addFilter(_one_line_per_nats_error)
    data_dir = args.data_dir.resolve()
    share_dir = (args.share_dir or data_dir / "share").resolve()
    share_dir.mkdir(parents=True, exist_ok=True)
    # Every part reads the shared root from the environment (tts_api.policy); set it before they load.
    os.environ["TTS_SHARED_DIR"] = str(share_dir)
    os.environ.setdefault("TTS_SHARED_PREFIX", "/share")
    from local_mode.nats_supervisor import NatsSupervisor
    from nats_support.embedded_nats import EmbeddedNats

    with EmbeddedNats(data_dir / "nats", port=args.nats_port or None) as nats_server:
        try:
            supervisor = NatsSupervisor(nats_server, watched=[share_dir])
            return asyncio.run(_serve(args, supervisor, nats_server.url, share_dir))
        except KeyboardInterrupt:
            return 130


def _one_line_per_nats_error(record: logging.LogRecord) -> bool:
    """The NATS client logs each failed reconnect attempt with a traceback: one line instead."""
    if record.exc_info and record.exc_info[1] is not None:
        record.msg = f"{record.getMessage()}: {record.exc_info[1]!r}"
        record.args = None
        record.exc_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


async def _serve(args: argparse.Namespace, supervisor: NatsSupervisor, nats_url: str, share_dir: Path) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings
    from gateway.worker_directory import open_worker_directory
    from local_mode.embedded_server import EmbeddedServer
    from local_mode.operator_driver import LocalDriver, LocalOperatorStore
    from local_mode.record_store import (
        LOCAL_NAMESPACE,
        LocalWorkflowStore,
        close_client,
        connect,
        open_local_store,
    )
    from nats_support.jetstream import ensure_jetstream
    from nats_support.tasks import cancel_and_wait
    from tts_api.policy import policy_from_env
    from tts_operator.output_cleanup import request_output_deletion
    from tts_operator.runtime import Runtime
    from tts_operator.settings import Settings as OperatorSettings
    from voice_library.presets import load_presets

    policy_from_env.cache_clear()
    presets = load_presets(args.presets)
    worker_settings = _worker_settings(args, nats_url)
    # One process holds the presets file: the gateway refuses an unknown preset name at once.
    policy = _serving_one_model(policy_from_env(), worker_settings).model_copy(
        update={"voice_presets": frozenset(presets)}
    )
    client = await connect(nats_url, "tts-local")
    js = client.jetstream()
    await ensure_jetstream(js)
    records = await LocalWorkflowStore.open(js, policy, client=client, health=supervisor.health)

    async def restore_buckets() -> None:
        await asyncio.wait_for(ensure_jetstream(js), timeout=5)

    supervisor.on_restart = restore_buckets
    operator_store = LocalOperatorStore(
        records, on_deleted=lambda workflow: request_output_deletion(js, workflow, policy)
    )
    operator_settings = OperatorSettings(nats_url=nats_url, leader_election=False, metrics_port=0)
    # Behind the gateway, as on a cluster, a voice name is the workers' to resolve: they read the
    # presets and the stored voices (which the gateway checked when it accepted the request).
    behind_gateway = policy.model_copy(update={"voice_presets": None})
    runtime = await Runtime.start(operator_settings, operator_store, behind_gateway)
    driver = LocalDriver(records, operator_store, runtime.runner, tick_seconds=operator_settings.tick_seconds)
    workers = _workers(args, worker_settings, behind_gateway, presets)

    gateway_settings = GatewaySettings(
        host=args.host,
        port=args.port,
        nats_url=nats_url,
        api_key=args.api_key,
        presets_file=args.presets,
        namespace=LOCAL_NAMESPACE,
    )
    gateway_stores: list[LocalWorkflowStore] = []

    @contextlib.asynccontextmanager
    async def gateway_store() -> AsyncIterator[LocalWorkflowStore]:
        async with open_local_store(nats_url, policy, health=supervisor.health) as store:
            gateway_stores.append(store)
            yield store

    app = create_app(gateway_settings, gateway_store, policy, lambda: open_worker_directory(nats_url))
    server = EmbeddedServer(
        uvicorn.Config(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=10)
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)

    tasks: dict[str, asyncio.Task[Any]] = {
        "nats supervisor": asyncio.create_task(supervisor.run(), name="nats-supervisor"),
        "operator": asyncio.create_task(driver.run(), name="local-operator"),
        "operator events": runtime.consumer_task,
        "gateway": asyncio.create_task(server.serve(), name="gateway"),
        **{worker.worker_id: asyncio.create_task(worker.run(), name=worker.worker_id) for worker in workers},
    }
    engine = workers[0].engine.name if workers else "none"
    log.info(
        "IndexTTS2 local stack on http://%s:%d (engine %s, /share = %s, NATS %s); Ctrl-C stops it",
        args.host,
        args.port,
        engine,
        share_dir,
        nats_url,
    )
    ended = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([ended, *tasks.values()], return_when=asyncio.FIRST_COMPLETED)
    failed = [name for name, task in tasks.items() if task in done and task.exception() is not None]
    for name in failed:
        error = tasks[name].exception()
        log.error("%s stopped: %r", name, error, exc_info=error)

    log.info("stopping: the gateway first, then the workers (finishing their jobs), then the operator")
    for store in gateway_stores:
        store.release_waiters()  # a synchronous request still waiting is answered with its status now
    server.should_exit = True
    for worker in workers:
        worker.request_stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(
            asyncio.gather(tasks["gateway"], *(tasks[w.worker_id] for w in workers), return_exceptions=True),
            timeout=60,
        )
    for task in (tasks["operator"], tasks["nats supervisor"], ended):
        await cancel_and_wait(task)
    try:
        await asyncio.wait_for(runtime.stop(), timeout=15)
    except TimeoutError:
        log.warning("the operator did not stop within 15 s; leaving it")
    await records.close()
    await close_client(client)
    log.info("stopped")
    return 1 if failed else 0


def _worker_settings(args: argparse.Namespace, nats_url: str) -> Any:
    from inference_pod.settings import WorkerSettings

    overrides: dict[str, Any] = {"nats_url": nats_url, "engine": args.engine, "http_port": 0}
    if args.checkpoint is not None:
        overrides["checkpoint_dir"] = args.checkpoint
    if args.presets is not None:
        overrides["presets_file"] = args.presets
    if args.default_voice is not None:
        overrides["default_voice"] = args.default_voice
    return WorkerSettings(**overrides)


def _serving_one_model(policy: Any, settings: Any) -> Any:
    """Local mode runs one engine: requests are for its model, and another is refused at the door,
    unless ``TTS_MODELS`` or ``TTS_DEFAULT_MODEL`` say otherwise."""
    from inference_pod.engines.factory import engine_name
    from tts_api.speech_models import model_of

    model = model_of(engine_name(settings))
    update: dict[str, Any] = {}
    if "TTS_MODELS" not in os.environ:
        update["models"] = (model,)
    models = update.get("models", policy.models)
    if "TTS_DEFAULT_MODEL" not in os.environ and (not models or model in models):
        update["default_model"] = model
    return policy.model_copy(update=update)


def _workers(args: argparse.Namespace, settings: Any, policy: Any, presets: Any) -> list[Any]:
    from inference_pod.engines.factory import build_engine
    from inference_pod.metrics import WorkerMetrics
    from inference_pod.worker import Worker

    metrics = WorkerMetrics()
    return [
        Worker(
            settings=settings,
            policy=policy,
            engine=build_engine(settings, device="cpu"),
            presets=presets,
            slot=f"cpu{index}",
            metrics=metrics,
        )
        for index in range(max(1, args.workers))
    ]
