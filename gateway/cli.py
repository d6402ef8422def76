"""``indextts-k8s gateway``: the REST gateway on :8788 (its monitoring on :8789), over the cluster's
TTSWorkflows."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tts_api.policy import ValidationPolicy

HELP = "run the REST gateway (the workflow API on :8788) over the cluster's TTSWorkflows"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (env TTS_GATEWAY_HOST; default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (env TTS_GATEWAY_PORT; default 8788)")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="monitoring port: /healthz, /readyz, /metrics without the key "
        "(env TTS_GATEWAY_METRICS_PORT; default 8789; 0: none)",
    )
    parser.add_argument("--namespace", help="namespace of the TTSWorkflows (env TTS_GATEWAY_NAMESPACE)")
    parser.add_argument("--nats-url", help="NATS, for the worker registry (env TTS_GATEWAY_NATS_URL)")
    parser.add_argument(
        "--kube-api-url",
        default="",
        help="talk to this API server without credentials (kubectl proxy); "
        "default: in-cluster credentials, else KUBECONFIG",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from gateway.app import create_app
    from gateway.kubernetes_backend import KubernetesBackend, open_kubernetes_backend
    from gateway.serving import GatewayServers
    from gateway.settings import GatewaySettings
    from gateway.worker_directory import WorkerDirectory, open_worker_directory
    from kube_access.client import api_client
    from kube_access.voices import KubernetesVoices
    from tts_api.policy import policy_from_env
    from voice_library.store import VoiceStore

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    overrides = {
        key: value
        for key, value in {
            "host": args.host,
            "port": args.port,
            "metrics_port": args.metrics_port,
            "namespace": args.namespace,
            "nats_url": args.nats_url,
        }.items()
        if value is not None
    }
    settings = GatewaySettings(**overrides)
    policy = policy_with_presets(policy_from_env(), settings.presets_file)
    api = api_client(args.kube_api_url)
    quota_reader = KubernetesBackend(api, settings.namespace, policy).gpu_quota

    async def kubernetes_voices(settings: GatewaySettings, _: WorkerDirectory) -> VoiceStore:
        return KubernetesVoices(api, settings.namespace)

    app = create_app(
        settings,
        lambda: open_kubernetes_backend(api, settings.namespace, policy),
        policy,
        lambda: open_worker_directory(settings.nats_url, quota_reader),
        kubernetes_voices,
    )
    try:
        asyncio.run(GatewayServers.of(app).serve())
    except OSError as exc:  # the monitoring port taken
        logging.getLogger("gateway.app").error("%s", exc)
        return 1
    return 0


def policy_with_presets(policy: ValidationPolicy, presets_file: Path | None) -> ValidationPolicy:
    """``policy`` knowing the preset names of ``presets_file`` (read as the workers read it)."""
    if presets_file is None:
        return policy
    from voice_library.presets import load_presets

    return policy.model_copy(update={"voice_presets": frozenset(load_presets(presets_file))})
