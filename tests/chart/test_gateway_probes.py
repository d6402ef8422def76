"""The chart's gateway probes, run against the real gateway app (over a real nats-server).

The readiness probe must get through the API key the chart configures; liveness needs no key.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from kube_testbed.helm import Helm, component, env_of, named
from nats_support.embedded_nats import EmbeddedNats
from tests.gateway.served import served_gateway
from tts_api.policy import ValidationPolicy

API_KEY = "probe-test-key-0123456789"


def gateway_container(helm: Helm, *set_values: str) -> dict[str, object]:
    deployment = named(helm.template(set_values=set_values), "Deployment", component("gateway"))
    container: dict[str, object] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def run_exec_probe(command: list[str], port: int, key: str) -> int:
    """The probe as the kubelet runs it: the container's command, with the container's environment."""
    assert command[0] == "python"
    env = {**os.environ, "TTS_GATEWAY_PORT": str(port), "TTS_GATEWAY_API_KEY": key}
    done = subprocess.run(  # noqa: S603 (this Python, the chart's probe)
        [sys.executable, *command[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    return done.returncode


@pytest.mark.parametrize(("key", "ready"), [(API_KEY, True), ("a-wrong-key", False)])
def test_the_readiness_probe_passes_the_api_key_the_gateway_wants(
    helm: Helm, nats_server: EmbeddedNats, unmounted_policy: ValidationPolicy, key: str, ready: bool
) -> None:
    container = gateway_container(helm)
    probe = container["readinessProbe"]
    assert isinstance(probe, dict)
    assert "httpGet" not in probe, "an httpGet probe could carry the key only in plain text"
    with served_gateway(nats_server.url, unmounted_policy, api_key=API_KEY) as url:
        port = int(url.rsplit(":", 1)[1])
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 401, "/readyz wants the key"
        assert (run_exec_probe(probe["exec"]["command"], port, key) == 0) is ready
        # Liveness: /healthz without any key.
        assert container["livenessProbe"] == {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        }
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_without_an_api_key_the_readiness_probe_is_a_plain_http_get(helm: Helm) -> None:
    container = gateway_container(helm, "gateway.apiKey.enabled=false")
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}  # type: ignore[index]
    assert "TTS_GATEWAY_API_KEY" not in env_of(container)
