"""The gateway served over real HTTP by uvicorn in a thread, on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from gateway.worker_directory import open_worker_directory
from local_mode.record_store import open_local_store
from nats_support.embedded_nats import free_port
from tts_api.policy import ValidationPolicy


@contextlib.contextmanager
def served_gateway(nats_url: str, policy: ValidationPolicy, **settings: Any) -> Iterator[str]:
    """Yield the base URL of a gateway over the local store at ``nats_url``."""
    port = free_port()
    app = create_app(
        GatewaySettings.model_validate({**settings, "port": port}),
        lambda: open_local_store(nats_url, policy),
        policy,
        lambda: open_worker_directory(nats_url),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
