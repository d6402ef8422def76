"""The monitoring listener (TTS_GATEWAY_METRICS_PORT): probes and Prometheus without the API key,
on a port of its own, beside the workflow API's port, which keeps every route behind the key."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.app import create_app
from gateway.serving import GatewayServers
from gateway.settings import GatewaySettings
from gateway.worker_directory import open_worker_directory
from local_mode.record_store import LocalWorkflowStore
from nats_support.embedded_nats import free_port
from tests.gateway.served import served_with_monitoring
from tts_api.policy import ValidationPolicy

API_KEY = "monitoring-test-key-0123456789"


def test_probes_and_metrics_need_no_key_on_the_monitoring_port(
    nats_url: str, policy: ValidationPolicy
) -> None:
    with served_with_monitoring(nats_url, policy, api_key=API_KEY) as (api, monitoring):
        assert httpx.get(f"{monitoring}/healthz", timeout=10).json() == {"status": "ok"}
        assert httpx.get(f"{monitoring}/readyz", timeout=10).json() == {"status": "ready"}
        metrics = httpx.get(f"{monitoring}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert "tts_gateway_requests_total" in metrics.text
        # The workflow API is not served there, nor its OpenAPI pages.
        for path in ("/v1/workflows/status/wf-0", "/api/v1/monitoring/statistics", "/openapi.json", "/docs"):
            response = httpx.get(f"{monitoring}{path}", timeout=10)
            assert response.status_code == 404, path
            assert response.json()["error_code"] == "INVALID_INPUT"
        # The API port: /healthz open, everything else behind the key.
        assert httpx.get(f"{api}/healthz", timeout=10).status_code == 200
        for path in ("/readyz", "/metrics", "/openapi.json", "/api/v1/monitoring/statistics"):
            assert httpx.get(f"{api}{path}", timeout=10).status_code == 401, path
            keyed = httpx.get(f"{api}{path}", headers={"X-API-Key": API_KEY}, timeout=10)
            assert keyed.status_code == 200, path


async def test_a_monitoring_port_taken_stops_the_gateway(
    store: LocalWorkflowStore, policy: ValidationPolicy, nats_url: str
) -> None:
    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[LocalWorkflowStore]:
        yield store

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = GatewaySettings(host="127.0.0.1", port=free_port(), metrics_port=taken.getsockname()[1])
        app = create_app(settings, open_store, policy, lambda: open_worker_directory(nats_url))
        servers = GatewayServers.of(app)
        with pytest.raises(OSError, match=r"the monitoring port .* \(TTS_GATEWAY_METRICS_PORT\)"):
            await asyncio.wait_for(servers.serve(), timeout=30)
    assert not servers.api.started, "the workflow API is not served without its monitoring port"
