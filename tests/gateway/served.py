"""The gateway served over real HTTP by uvicorn in a thread, on free ports of 127.0.0.1, as
``indextts-k8s gateway`` serves it (:class:`gateway.serving.GatewayServers`)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

from gateway.app import create_app
from gateway.serving import GatewayServers
from gateway.settings import GatewaySettings
from gateway.worker_directory import open_worker_directory
from local_mode.record_store import open_local_store
from nats_support.embedded_nats import free_port
from tts_api.policy import ValidationPolicy


@contextlib.contextmanager
def served(nats_url: str, policy: ValidationPolicy, **settings: Any) -> Iterator[GatewaySettings]:
    """Serve a gateway over the local store at ``nats_url``; yield its settings (with its ports)."""
    gateway_settings = GatewaySettings.model_validate(
        {"metrics_port": 0, **settings, "host": "127.0.0.1", "port": free_port()}
    )
    app = create_app(
        gateway_settings,
        lambda: open_local_store(nats_url, policy),
        policy,
        lambda: open_worker_directory(nats_url),
    )
    servers = GatewayServers.of(app)
    thread = threading.Thread(target=asyncio.run, args=(servers.serve(),), name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not servers.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield gateway_settings
    finally:
        servers.stop()
        thread.join(timeout=10)


@contextlib.contextmanager
def served_gateway(nats_url: str, policy: ValidationPolicy, **settings: Any) -> Iterator[str]:
    """Yield the base URL of a gateway's workflow API (no monitoring listener)."""
    with served(nats_url, policy, **settings) as gateway_settings:
        yield f"http://127.0.0.1:{gateway_settings.port}"


@contextlib.contextmanager
def served_with_monitoring(
    nats_url: str, policy: ValidationPolicy, **settings: Any
) -> Iterator[tuple[str, str]]:
    """Yield the base URLs of a gateway's workflow API and of its monitoring listener."""
    with served(nats_url, policy, metrics_port=free_port(), **settings) as gateway_settings:
        yield f"http://127.0.0.1:{gateway_settings.port}", f"http://127.0.0.1:{gateway_settings.metrics_port}"
