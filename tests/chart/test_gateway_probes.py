"""The chart's gateway probes and scraping, run against the real gateway (over a real nats-server).

The readiness probe and Prometheus use the monitoring port, which wants no API key: a plain httpGet
there, with no key in the pod spec or the ServiceMonitor, while the API port keeps its key.
"""

from __future__ import annotations

import httpx

from kube_testbed.helm import Helm, by_kind, component, env_of, named
from nats_support.embedded_nats import EmbeddedNats
from tests.chart.test_render import EVERYTHING
from tests.gateway.served import served_with_monitoring
from tts_api.policy import ValidationPolicy

API_KEY = "probe-test-key-0123456789"


def gateway_container(helm: Helm, *set_values: str) -> dict[str, object]:
    deployment = named(helm.template(set_values=set_values), "Deployment", component("gateway"))
    container: dict[str, object] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def port_path(probe: object) -> tuple[str, str]:
    assert isinstance(probe, dict)
    get = probe["httpGet"]
    return get["port"], get["path"]


def container_port(container: dict[str, object], name: str) -> int:
    ports = container["ports"]
    assert isinstance(ports, list)
    (port,) = [p["containerPort"] for p in ports if p["name"] == name]
    assert isinstance(port, int)
    return port


def test_the_probes_get_through_where_the_api_key_stops_clients(
    helm: Helm, nats_server: EmbeddedNats, unmounted_policy: ValidationPolicy
) -> None:
    container = gateway_container(helm, "gateway.metricsPort=9191")
    env = env_of(container)
    assert "TTS_GATEWAY_API_KEY" in env, "the chart sets a key by default"
    assert container_port(container, "metrics") == 9191 == int(env["TTS_GATEWAY_METRICS_PORT"])
    assert container_port(container, "http") == int(env["TTS_GATEWAY_PORT"])
    ports = {"http": "api", "metrics": "monitoring"}
    with served_with_monitoring(nats_server.url, unmounted_policy, api_key=API_KEY) as (api, monitoring):
        urls = {"api": api, "monitoring": monitoring}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            port, path = port_path(container[probe])
            answer = httpx.get(f"{urls[ports[port]]}{path}", timeout=10)
            assert answer.status_code == 200, (probe, answer.text)
        assert port_path(container["readinessProbe"]) == ("metrics", "/readyz")
        assert httpx.get(f"{api}/readyz", timeout=10).status_code == 401, "the API port's wants the key"
        assert httpx.get(f"{monitoring}/metrics", timeout=10).status_code == 200


def test_prometheus_scrapes_the_monitoring_port_with_no_key(helm: Helm) -> None:
    docs = helm.template(values=[EVERYTHING])
    monitor = named(docs, "ServiceMonitor", component("gateway"))
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint == {"port": "metrics", "path": "/metrics", "interval": "30s"}
    services = [
        doc
        for doc in by_kind(docs, "Service")
        if doc["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"
    ]
    by_port = {port["name"]: doc for doc in services for port in doc["spec"]["ports"]}
    assert set(by_port) == {"http", "metrics"}
    metrics_service = by_port["metrics"]
    assert metrics_service["metadata"]["name"] == component("gateway-metrics")
    assert metrics_service["spec"]["clusterIP"] == "None", "the monitoring port is never a client Service's"
    assert metrics_service["spec"]["ports"] == [
        {"name": "metrics", "port": 8789, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert "authorization" not in endpoint, "Prometheus needs no key there"


def test_without_an_api_key_the_probes_are_the_same(helm: Helm) -> None:
    keyed, open_ = gateway_container(helm), gateway_container(helm, "gateway.apiKey.enabled=false")
    assert "TTS_GATEWAY_API_KEY" not in env_of(open_)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert keyed[probe] == open_[probe], probe
