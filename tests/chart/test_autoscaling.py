"""``autoscaling.enabled``: a KEDA ScaledObject on the inference Deployment, scaled on its model's jobs.

The rendered object is checked against KEDA's own ScaledObject CRD (``keda/``, vendored from a KEDA
release): by its OpenAPI schema, and by a real API server that has the CRD installed and validates
the object in a dry run. Its trigger names the consumer the workers of that model read
(``tts_api.nats_names.workers_consumer``), whose lag tests/nats/test_scaler_input.py measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kube_testbed.apiserver import RealApiServer
from kube_testbed.helm import NAMESPACE, Helm, HelmError, Manifest, by_kind, component, env_of, named
from tts_api.nats_names import JOBS_STREAM, workers_consumer

KEDA_CRD = Path(__file__).with_name("keda") / "keda.sh_scaledobjects.yaml"
ON = ["autoscaling.enabled=true"]


def keda_schema() -> dict[str, Any]:
    crd = yaml.safe_load(KEDA_CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def check_scaled_object(doc: Manifest) -> None:
    """The ScaledObject matches KEDA's schema (used for every values set that renders one)."""
    jsonschema.validate(doc, keda_schema())


def scaled_object(helm: Helm, *extra: str) -> Manifest:
    return named(helm.template(set_values=[*ON, *extra]), "ScaledObject", component("inference"))


def test_off_by_default_with_the_fixed_replicas(helm: Helm) -> None:
    docs = helm.template()
    assert not by_kind(docs, "ScaledObject")
    assert named(docs, "Deployment", component("inference"))["spec"]["replicas"] == 1


@pytest.mark.parametrize(("engine", "model"), [("indextts2", "indextts-2"), ("indextts25", "indextts-2.5")])
def test_it_scales_the_inference_deployment_on_its_models_jobs(helm: Helm, engine: str, model: str) -> None:
    docs = helm.template(set_values=[*ON, f"inference.engine={engine}", "models.enabled=true"])
    deployment = named(docs, "Deployment", component("inference"))
    assert "replicas" not in deployment["spec"]  # KEDA's to set: an upgrade must not reset it
    scaled = named(docs, "ScaledObject", component("inference"))
    check_scaled_object(scaled)
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": deployment["metadata"]["name"]}
    assert (spec["minReplicaCount"], spec["cooldownPeriod"]) == (0, 300)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "nats-jetstream"
    metadata = trigger["metadata"]
    assert (metadata["stream"], metadata["consumer"]) == (JOBS_STREAM, workers_consumer(model))
    assert metadata["account"] == "$G"
    assert (metadata["lagThreshold"], metadata["activationLagThreshold"]) == ("1", "0")
    # The chart's NATS monitoring port, on its client Service, open to KEDA's namespace.
    nats_service = named(docs, "Service", component("nats"))
    monitor = next(p["port"] for p in nats_service["spec"]["ports"] if p["name"] == "monitor")
    assert metadata["natsServerMonitoringEndpoint"] == f"{component('nats')}.{NAMESPACE}.svc:{monitor}"
    policy = named(docs, "NetworkPolicy", component("nats"))
    keda = [
        rule for rule in policy["spec"]["ingress"] if {"port": "monitor", "protocol": "TCP"} in rule["ports"]
    ]
    assert keda[0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}}}
    ]


def test_the_operator_and_the_gateway_are_told_the_pods_scale(helm: Helm) -> None:
    """So that a model at zero is waited for (WaitingForWorker), not refused (404) or taken for one
    nobody runs."""
    for values, expected in (([], "false"), (ON, "true")):
        docs = helm.template(set_values=values)
        for name, variable in (
            ("operator", "TTS_OPERATOR_AUTOSCALING"),
            ("gateway", "TTS_GATEWAY_WAIT_FOR_WORKERS"),
        ):
            (container,) = named(docs, "Deployment", component(name))["spec"]["template"]["spec"][
                "containers"
            ]
            assert env_of(container)[variable] == expected


def test_no_more_pods_than_the_gpu_quota_grants(helm: Helm) -> None:
    assert scaled_object(helm, "gpuQuota.gpus=2", "autoscaling.maxReplicas=8")["spec"]["maxReplicaCount"] == 2
    two_each = scaled_object(helm, "gpuQuota.gpus=5", "inference.gpus=2", "autoscaling.maxReplicas=8")
    assert two_each["spec"]["maxReplicaCount"] == 2
    assert scaled_object(helm, "gpuQuota.gpus=8", "autoscaling.maxReplicas=3")["spec"]["maxReplicaCount"] == 3
    unbounded = scaled_object(helm, "gpuQuota.enabled=false", "autoscaling.maxReplicas=6")
    assert unbounded["spec"]["maxReplicaCount"] == 6


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (["nats.external.url=nats://nats.infra:4222"], "set autoscaling.natsMonitoringEndpoint"),
        (["autoscaling.minReplicas=3", "gpuQuota.gpus=2"], "autoscaling.minReplicas (3) is above"),
    ],
)
def test_settings_that_cannot_work_are_refused_saying_what_to_change(
    helm: Helm, values: list[str], says: str
) -> None:
    with pytest.raises(HelmError, match=says.replace("(", r"\(").replace(")", r"\)")):
        helm.template(set_values=[*ON, *values])


def test_an_external_nats_is_read_where_it_is_said(helm: Helm) -> None:
    scaled = scaled_object(
        helm, "nats.external.url=nats://nats.infra:4222", "autoscaling.natsMonitoringEndpoint=nats.infra:8222"
    )
    assert scaled["spec"]["triggers"][0]["metadata"]["natsServerMonitoringEndpoint"] == "nats.infra:8222"


@pytest.fixture(scope="module")
def keda_crd(kube_api: RealApiServer) -> RealApiServer:
    kube_api.install_crd(yaml.safe_load(KEDA_CRD.read_text()))
    return kube_api


def create_dry_run(api: RealApiServer, namespace: str, doc: Manifest) -> None:
    with api.api_client() as session:
        client.CustomObjectsApi(session).create_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects", doc, dry_run="All"
        )


def test_a_real_api_server_with_kedas_crd_admits_the_scaled_object(
    helm: Helm, keda_crd: RealApiServer, kube_namespace: str
) -> None:
    scaled = scaled_object(helm)
    scaled["metadata"]["namespace"] = kube_namespace
    create_dry_run(keda_crd, kube_namespace, scaled)
    # The server does check it: a count KEDA's schema refuses is refused.
    broken = {**scaled, "spec": {**scaled["spec"], "minReplicaCount": -1}}
    with pytest.raises(ApiException) as refused:
        create_dry_run(keda_crd, kube_namespace, broken)
    assert refused.value.status == 422
    assert "minReplicaCount" in str(refused.value.body)
