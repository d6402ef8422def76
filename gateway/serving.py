"""The gateway's listeners in one event loop: the workflow API (``TTS_GATEWAY_PORT``) and, unless
``TTS_GATEWAY_METRICS_PORT`` is 0, the monitoring listener (:mod:`gateway.monitoring_app`).

The API server owns the process's signals and the monitoring server stops when it does. The
monitoring port is bound before either starts: taken, it is an ``OSError`` naming it, and nothing is
served (a gateway without its probes would never be ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from gateway.app_state import settings_of
from gateway.monitoring_app import create_monitoring_app


class SignalFreeServer(uvicorn.Server):
    """A uvicorn server that leaves SIGINT and SIGTERM to the server beside it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class GatewayServers:
    api: uvicorn.Server
    monitoring: uvicorn.Server | None

    @classmethod
    def of(cls, app: FastAPI, *, log_level: str = "warning") -> GatewayServers:
        settings = settings_of(app)
        api = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level))
        if not settings.metrics_port:
            return cls(api, None)
        monitoring_app = create_monitoring_app(app)
        monitoring = SignalFreeServer(
            uvicorn.Config(
                monitoring_app,
                host=settings.host,
                port=settings.metrics_port,
                log_level=log_level,
                lifespan="off",
            )
        )
        return cls(api, monitoring)

    @property
    def started(self) -> bool:
        return self.api.started and (self.monitoring is None or self.monitoring.started)

    def stop(self) -> None:
        self.api.should_exit = True
        if self.monitoring is not None:
            self.monitoring.should_exit = True

    async def serve(self) -> None:
        if self.monitoring is None:
            await self.api.serve()
            return
        config = self.monitoring.config
        listening = bound_socket(config.host, config.port)
        monitoring = asyncio.create_task(self.monitoring.serve([listening]), name="gateway-monitoring")
        try:
            await self.api.serve()
        finally:
            self.stop()
            await monitoring


def bound_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``, or an ``OSError`` saying which port could not be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise OSError(
            exc.errno, f"the monitoring port {host}:{port} (TTS_GATEWAY_METRICS_PORT): {exc.strerror}"
        ) from None
    return listening
