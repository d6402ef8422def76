"""``/healthz`` (liveness), ``/readyz`` (ready once the model is loaded) and ``/metrics``.

A minimal HTTP/1.1 server on asyncio: three GET routes, no dependencies beyond prometheus-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        ready: Callable[[], bool],
        alive: Callable[[], bool],
        registry: CollectorRegistry,
    ) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._alive = alive
        self._registry = registry
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health server on http://%s:%d (/healthz, /readyz, /metrics)", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        """Status, content type and body for one request: the routing, apart from the socket."""
        if method != "GET":
            return 405, "text/plain", b"only GET\n"
        route = path.split("?", 1)[0]
        if route == "/healthz":
            return (200, "text/plain", b"ok\n") if self._alive() else (503, "text/plain", b"stalled\n")
        if route == "/readyz":
            return (
                (200, "text/plain", b"ready\n")
                if self._ready()
                else (503, "text/plain", b"model not loaded\n")
            )
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"not found: try /healthz, /readyz or /metrics\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request_line.decode("latin-1").split()
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            status, content_type, body = self.respond(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
