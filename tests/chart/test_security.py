"""Restricted security everywhere: non-root, read-only root, no privilege, no needless credentials."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from kube_testbed.helm import CPU_VALUES, Helm, by_kind, component, containers, env_of, named, pod_specs
from tests.chart.test_render import EVERYTHING

VALUE_SETS = {"default": (), "cpu": (CPU_VALUES,), "everything": (EVERYTHING,)}

RESTRICTED_POD = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}
# Pods that speak to the Kubernetes API, and so mount a ServiceAccount token; every other pod must not.
API_CLIENTS = {component("gateway"), component("operator")}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_and_container_is_restricted(helm: Helm, values: Sequence[Path]) -> None:
    workloads = list(pod_specs(helm.template(values=values)))
    assert {name for name, _ in workloads} >= {component(c) for c in ("gateway", "operator", "inference")}
    for name, pod in workloads:
        assert pod["securityContext"].items() >= RESTRICTED_POD.items(), name
        for container in containers(pod):
            context = container["securityContext"]
            assert context.items() >= RESTRICTED_CONTAINER.items(), f"{name}/{container['name']}"
            assert "add" not in context["capabilities"], f"{name}/{container['name']}"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_writable_paths_are_volumes_since_the_root_is_read_only(helm: Helm, values: Sequence[Path]) -> None:
    for name, pod in pod_specs(helm.template(values=values)):
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in containers(pod):
            mounts = {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}
            if name == component("nats"):
                assert "/data" in mounts, "JetStream's store is on the PVC"
                continue
            assert "/tmp" in mounts, f"{name} gets a writable /tmp"
            tmp = volumes[mounts["/tmp"]["name"]]
            assert tmp["emptyDir"]["sizeLimit"], f"{name}: /tmp is a bounded emptyDir"


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_only_api_clients_mount_a_service_account_token(helm: Helm, values: Sequence[Path]) -> None:
    docs = helm.template(values=values)
    accounts = {doc["metadata"]["name"]: doc for doc in by_kind(docs, "ServiceAccount")}
    for name, pod in pod_specs(docs):
        account = accounts[pod["serviceAccountName"]]
        assert pod["serviceAccountName"] != "default", f"{name} has its own ServiceAccount"
        mounts_token = pod.get(
            "automountServiceAccountToken", account.get("automountServiceAccountToken", True)
        )
        assert mounts_token is (name in API_CLIENTS), name
        if name not in API_CLIENTS:
            assert account["automountServiceAccountToken"] is False, pod["serviceAccountName"]


def test_the_inference_pods_have_their_own_token_less_service_account(helm: Helm) -> None:
    docs = helm.template()
    pod = named(docs, "Deployment", component("inference"))["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == component("inference")
    assert pod["automountServiceAccountToken"] is False
    bound = {
        subject["name"]
        for doc in docs
        if doc["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        for subject in doc["subjects"]
    }
    assert component("inference") not in bound, "the inference pods hold no Kubernetes rights"


def test_the_api_key_comes_from_a_secret_and_never_from_plain_values(helm: Helm) -> None:
    docs = helm.template()
    secret = named(docs, "Secret", component("gateway-api-key"))
    key = secret["data"]["api-key"]
    assert len(key) >= 40, "a random key, base64-encoded"
    gateway = named(docs, "Deployment", component("gateway"))["spec"]["template"]["spec"]["containers"][0]
    assert env_of(gateway)["TTS_GATEWAY_API_KEY"] == {
        "secretKeyRef": {"name": component("gateway-api-key"), "key": "api-key"}
    }


def test_an_existing_secret_is_used_and_none_is_made(helm: Helm) -> None:
    docs = helm.template(
        set_values=["gateway.apiKey.existingSecret=my-key", "gateway.apiKey.existingSecretKey=token"]
    )
    assert not by_kind(docs, "Secret")
    gateway = named(docs, "Deployment", component("gateway"))["spec"]["template"]["spec"]["containers"][0]
    assert env_of(gateway)["TTS_GATEWAY_API_KEY"] == {"secretKeyRef": {"name": "my-key", "key": "token"}}


def test_without_an_api_key_there_is_no_secret_and_no_key_variable(helm: Helm) -> None:
    docs = helm.template(set_values=["gateway.apiKey.enabled=false"])
    assert not by_kind(docs, "Secret")
    gateway = named(docs, "Deployment", component("gateway"))["spec"]["template"]["spec"]["containers"][0]
    assert "TTS_GATEWAY_API_KEY" not in env_of(gateway)


def test_notes_tell_how_to_send_the_first_request_without_printing_the_key(
    helm: Helm, tmp_path: Path
) -> None:
    docs = helm.template()
    key = named(docs, "Secret", component("gateway-api-key"))["data"]["api-key"]
    notes = helm.notes(tmp_path)
    for expected in (
        f"kubectl -n speech port-forward service/{component('gateway')} 8788:8788",
        'curl -X POST "$TTS_URL/v1/workflows"',
        '-H "X-API-Key: $TTS_API_KEY"',
        f"get secret {component('gateway-api-key')}",
        "kubectl -n speech wait --for=condition=Succeeded ttswf/hello",
        "kubectl apply --server-side -f charts/indextts/crds/",
    ):
        assert expected in notes, expected
    assert key not in notes
