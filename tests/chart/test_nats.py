"""The chart's NATS: three servers in a cluster (the default, production) or one, and the streams'
replicas passed to the operator, which creates them."""

from __future__ import annotations

import pytest

from kube_testbed.helm import CPU_VALUES, Helm, component, env_of, named
from tests.chart.test_wiring import container_of


def test_the_default_is_a_three_server_cluster_with_routes_and_three_replica_streams(helm: Helm) -> None:
    docs = helm.template()
    statefulset = named(docs, "StatefulSet", component("nats"))
    assert statefulset["spec"]["replicas"] == 3
    config = named(docs, "ConfigMap", component("nats"))["data"]["nats.conf"]
    name, headless = component("nats"), f"{component('nats')}-headless"
    for i in range(3):
        assert f"nats://{name}-{i}.{headless}.speech.svc:6222" in config
    assert "cluster {" in config
    assert "server_name: $POD_NAME" in config
    ports = {p["name"]: p["port"] for p in named(docs, "Service", headless)["spec"]["ports"]}
    assert ports["cluster"] == 6222
    assert named(docs, "Service", headless)["spec"]["publishNotReadyAddresses"] is True
    assert statefulset["spec"]["serviceName"] == headless
    assert named(docs, "PodDisruptionBudget", name)["spec"]["maxUnavailable"] == 1
    assert env_of(container_of(docs, "operator"))["TTS_OPERATOR_NATS_REPLICAS"] == "3"


@pytest.mark.parametrize(
    ("values", "set_values"), [((CPU_VALUES,), ()), ((), ("nats.replicas=1",))], ids=["cpu", "one"]
)
def test_a_single_server_has_no_routes_and_one_replica_streams(
    helm: Helm, values: tuple[object, ...], set_values: tuple[str, ...]
) -> None:
    docs = helm.template(values=values, set_values=set_values)  # type: ignore[arg-type]
    assert named(docs, "StatefulSet", component("nats"))["spec"]["replicas"] == 1
    assert "cluster {" not in named(docs, "ConfigMap", component("nats"))["data"]["nats.conf"]
    assert env_of(container_of(docs, "operator"))["TTS_OPERATOR_NATS_REPLICAS"] == "1"


def test_an_external_nats_takes_its_own_stream_replicas(helm: Helm) -> None:
    docs = helm.template(
        set_values=["nats.external.url=nats://nats.infra:4222", "nats.external.streamReplicas=3"]
    )
    assert env_of(container_of(docs, "operator"))["TTS_OPERATOR_NATS_REPLICAS"] == "3"
