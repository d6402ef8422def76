"""`helm test`: a health_check workflow through the gateway Service, with the API key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from kube_testbed.helm import Helm, component, env_of, named

KEY = "smoke-key"


def smoke_pod(helm: Helm, *set_values: str) -> dict[str, Any]:
    pod: dict[str, Any] = named(helm.template(set_values=set_values), "Pod", component("smoke-test"))
    return pod


@pytest.fixture
def fake_gateway() -> Iterator[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """An HTTP server that answers POST /v1/workflows with the next queued body; records requests."""
    answers: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append({"path": self.path, "key": self.headers.get("X-API-Key"), "body": body})
            payload = json.dumps(answers.pop(0)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", answers, seen
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_the_smoke_test_is_a_helm_test_hook_calling_the_gateway_service(helm: Helm) -> None:
    pod = smoke_pod(helm)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = env_of(pod["spec"]["containers"][0])
    assert env["GATEWAY_URL"] == f"http://{component('gateway')}:8788"
    assert env["TTS_API_KEY"] == {"secretKeyRef": {"name": component("gateway-api-key"), "key": "api-key"}}
    assert "TTS_API_KEY" not in env_of(
        smoke_pod(helm, "gateway.apiKey.enabled=false")["spec"]["containers"][0]
    )


@pytest.mark.parametrize(
    ("answer", "passes"), [({"status": "healthy"}, True), ({"status": "unhealthy"}, False)]
)
def test_the_smoke_test_passes_only_on_a_healthy_answer(
    helm: Helm,
    fake_gateway: tuple[str, list[dict[str, Any]], list[dict[str, Any]]],
    answer: dict[str, Any],
    passes: bool,
) -> None:
    url, answers, seen = fake_gateway
    answers.append(answer)
    command = smoke_pod(helm)["spec"]["containers"][0]["command"]
    assert command[:2] == ["python", "-c"]
    done = subprocess.run(  # noqa: S603 (this Python, the chart's script)
        [sys.executable, "-c", command[2]],
        env={**os.environ, "GATEWAY_URL": url, "TTS_API_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode == 0) is passes, done.stderr
    (request,) = seen
    assert request["path"] == "/v1/workflows"
    assert request["key"] == KEY
    assert request["body"]["workflow_config"]["workflow_chain"] == ["indextts.health_check"]
