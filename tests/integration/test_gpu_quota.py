"""The GPU lock as the chart makes it, on a real API server with kube-controller-manager: the
ResourceQuota on ``nvidia.com/gpu`` lets exactly as many inference pods in as it grants GPUs, and
refuses the next one (the Deployment's and a hand-made pod alike)."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from kube_testbed.apiserver import RealApiServer, controller_manager, find_assets
from kube_testbed.components import wait_until
from kube_testbed.helm import NAMESPACE, Helm, by_kind, component, fetch_helm

GPUS = 2
QUOTA = component("gpu-quota")
INFERENCE = component("inference")


@pytest.fixture
def controllers(kube_api: RealApiServer, chart_rbac: list[dict[str, Any]]) -> Iterator[None]:
    """The quota, Deployment and ReplicaSet controllers (no scheduler, no node: pods stay Pending,
    which is all that admission and quota usage need)."""
    with controller_manager(kube_api):
        yield


def rendered(kind: str) -> dict[str, Any]:
    docs = Helm(fetch_helm()).template(set_values=(f"gpuQuota.gpus={GPUS}", f"inference.replicas={GPUS}"))
    (doc,) = [d for d in by_kind(docs, kind) if d["metadata"]["name"] in (QUOTA, INFERENCE)]
    return doc


def kubectl(api: RealApiServer, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (the assets' kubectl)
        [str(find_assets().kubectl), f"--kubeconfig={api.kubeconfig()}", "-n", NAMESPACE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def quota_status(core: client.CoreV1Api, part: str) -> dict[str, str]:
    """The quota's ``status.hard`` or ``status.used`` (empty until the quota controller fills it)."""
    status = core.read_namespaced_resource_quota(QUOTA, NAMESPACE).status
    found: dict[str, str] = (getattr(status, part, None) or {}) if status is not None else {}
    return found


def inference_pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(NAMESPACE, label_selector="app.kubernetes.io/component=inference")
    return [pod for pod in pods.items if pod.metadata and not pod.metadata.deletion_timestamp]


@pytest.mark.usefixtures("controllers")
def test_the_gpu_quota_refuses_an_inference_pod_beyond_it(kube_api: RealApiServer) -> None:
    quota, deployment = rendered("ResourceQuota"), rendered("Deployment")
    with kube_api.api_client() as admin:
        core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
        made = kubectl(kube_api, "create", "-f", "-", stdin=yaml.safe_dump(quota))
        assert made.returncode == 0, made.stderr
        try:
            wait_until(
                lambda: quota_status(core, "hard").get("requests.nvidia.com/gpu") == str(GPUS),
                30,
                "the quota controller filled the quota's status",
            )
            created = kubectl(kube_api, "create", "-f", "-", stdin=yaml.safe_dump(deployment))
            assert created.returncode == 0, created.stderr
            wait_until(lambda: len(inference_pods(core)) == GPUS, 60, f"{GPUS} inference pods")

            # One more replica than the quota grants: the ReplicaSet is refused the pod.
            apps.patch_namespaced_deployment_scale(INFERENCE, NAMESPACE, {"spec": {"replicas": GPUS + 1}})

            def refused() -> bool:
                events = core.list_namespaced_event(NAMESPACE).items
                return any(
                    e.reason == "FailedCreate" and "exceeded quota" in (e.message or "") for e in events
                )

            wait_until(refused, 30, "the ReplicaSet's FailedCreate: exceeded quota")
            assert len(inference_pods(core)) == GPUS
            assert quota_status(core, "used").get("requests.nvidia.com/gpu") == str(GPUS)

            # A pod made by hand from the same template is refused at admission, saying why.
            template = copy.deepcopy(deployment["spec"]["template"])
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "one-gpu-too-many", **template["metadata"]},
            }
            pod["spec"] = template["spec"]
            refusal = kubectl(kube_api, "create", "-f", "-", stdin=yaml.safe_dump(pod))
            assert refusal.returncode != 0
            assert "Error from server (Forbidden)" in refusal.stderr
            assert f"exceeded quota: {QUOTA}" in refusal.stderr
            assert "requests.nvidia.com/gpu" in refusal.stderr
        finally:
            _remove(core, apps)


def _remove(core: client.CoreV1Api, apps: client.AppsV1Api) -> None:
    """No garbage collector runs: scale to nothing, then delete what the controllers made."""
    try:
        apps.patch_namespaced_deployment_scale(INFERENCE, NAMESPACE, {"spec": {"replicas": 0}})
        wait_until(lambda: not inference_pods(core), 60, "inference pods gone")
        apps.delete_namespaced_deployment(INFERENCE, NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
    for replica_set in apps.list_namespaced_replica_set(NAMESPACE).items:
        if replica_set.metadata and replica_set.metadata.name:
            apps.delete_namespaced_replica_set(replica_set.metadata.name, NAMESPACE)
    for pod in core.list_namespaced_pod(NAMESPACE).items:
        if pod.metadata and pod.metadata.name:
            core.delete_namespaced_pod(pod.metadata.name, NAMESPACE, grace_period_seconds=0)
    try:
        core.delete_namespaced_resource_quota(QUOTA, NAMESPACE)
    except ApiException as exc:
        if exc.status != 404:
            raise
