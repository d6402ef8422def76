"""The e2e suite (e2e/) cannot run here (no cluster): it collects, and skips saying why; its helpers work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.cluster import Release, max_overlap, unique_name
from kube_testbed.helm import REPO

SCENARIOS = {
    "test_examples.py",
    "test_gateway.py",
    "test_gpu_lock.py",
    "test_pod_loss.py",
    "test_admission.py",
    "test_helm_test.py",
    "test_zz_uninstall.py",
}


def run_e2e(tmp_path: Path, *args: str, kubeconfig: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(tmp_path)}
    if kubeconfig is not None:
        env["KUBECONFIG"] = kubeconfig
    return subprocess.run(  # noqa: S603 (this Python, fixed arguments)
        [sys.executable, "-m", "pytest", "e2e", "-p", "no:cacheprovider", "-q", "-rs", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_suite_covers_the_issues_scenarios_and_is_not_in_make_test() -> None:
    import tomllib

    present = {path.name for path in (REPO / "e2e").glob("test_*.py")}
    assert present == SCENARIOS
    pytest_options = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert pytest_options["testpaths"] == ["tests"]


def test_without_kubeconfig_every_test_is_skipped_with_the_reason(tmp_path: Path) -> None:
    done = run_e2e(tmp_path, kubeconfig=None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " skipped" in done.stdout
    assert "passed" not in done.stdout
    assert "failed" not in done.stdout
    assert "no cluster: KUBECONFIG is not set" in done.stdout
    assert "make kind-up" in done.stdout


def test_an_unreachable_cluster_is_skipped_with_the_reason(tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: gone\n"
        "clusters: [{name: gone, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "contexts: [{name: gone, context: {cluster: gone, user: nobody}}]\n"
        "users: [{name: nobody, user: {token: x}}]\n"
    )
    done = run_e2e(tmp_path, "-k", "rejects_a_bad_manifest", kubeconfig=str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is unreachable" in done.stdout
    assert "passed" not in done.stdout


@pytest.mark.parametrize(
    ("intervals", "most"),
    [
        ([], 0),
        ([(0, 4), (4, 8), (8, 12)], 1),  # back to back: never two at once
        ([(0, 4), (1, 5), (4, 8), (5, 9)], 2),
        ([(0, 10), (1, 2), (1.5, 3)], 3),
    ],
)
def test_max_overlap_counts_syntheses_running_at_once(
    intervals: list[tuple[float, float]], most: int
) -> None:
    assert max_overlap(intervals) == most


def test_unique_names_are_valid_kubernetes_names_and_differ() -> None:
    import re
    import time

    first = unique_name("lock0")
    time.sleep(0.002)
    second = unique_name("lock0")
    assert first != second
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", first)


@pytest.mark.parametrize(
    ("release", "gateway"),
    [
        ("tts", "tts-indextts-gateway"),
        ("indextts", "indextts-gateway"),
        ("my-indextts", "my-indextts-gateway"),
    ],
)
def test_release_component_names_follow_the_charts_fullname(release: str, gateway: str) -> None:
    assert Release(name=release, namespace="x").component("gateway") == gateway


def test_a_cluster_without_the_release_is_skipped_naming_release_and_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reachable cluster (a stand-in kubectl that answers /readyz) where the chart is not installed."""
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "if '--raw' in sys.argv: print('ok'); sys.exit(0)\n"
        "print('Error from server (NotFound): deployments.apps not found', file=sys.stderr); sys.exit(1)\n"
    )
    kubectl.chmod(0o755)
    config = tmp_path / "kubeconfig"
    config.write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECTL", str(kubectl))
    monkeypatch.setenv("E2E_RELEASE", "speech")
    monkeypatch.setenv("E2E_NAMESPACE", "voice")
    done = run_e2e(tmp_path, "-k", "rejects_a_bad_manifest", kubeconfig=str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the chart is not installed as release 'speech' in namespace 'voice'" in done.stdout
