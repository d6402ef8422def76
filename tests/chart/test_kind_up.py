"""scripts/kind_up.sh (`make kind-up`), run with stand-ins for kind, docker, kubectl and helm.

No Docker engine here: the stand-ins record each call, so the test reads what the script would do to a
real cluster: create it from kind-config.yaml, load the three images, patch fake GPUs into each node's
status, and install the chart with the CPU and kind values.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kube_testbed.helm import REPO

STAND_IN = """#!{python}
import json, sys
with open({log!r}, "a") as log:
    log.write(json.dumps([{name!r}, *sys.argv[1:]]) + "\\n")
if {name!r} == "kubectl" and sys.argv[-4:] == ["get", "nodes", "-o", "name"]:
    print("node/indextts-control-plane")
"""


def run_kind_up(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("kind", "docker", "kubectl", "helm"):
        tool = bin_dir / name
        tool.write_text(STAND_IN.format(python=sys.executable, log=str(log), name=name))
        tool.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "KUBECTL": str(bin_dir / "kubectl"),
        "HELM": str(bin_dir / "helm"),
        "FAKE_GPUS": "4",
    }
    done = subprocess.run(  # noqa: S603 (the project's script, stand-in tools)
        [str(REPO / "scripts" / "kind_up.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_kind_up_creates_loads_patches_and_installs_in_that_order(tmp_path: Path) -> None:
    calls = run_kind_up(tmp_path)
    tools = [call[0] for call in calls]
    assert calls[0] == ["kind", "get", "clusters"]
    assert calls[1] == [
        "kind",
        "create",
        "cluster",
        "--name",
        "indextts",
        "--config",
        "kind-config.yaml",
        "--wait",
        "120s",
    ]
    loads = [call for call in calls if call[:3] == ["kind", "load", "docker-image"]]
    assert [call[-1] for call in loads] == [
        "ghcr.io/indextts-k8s/gateway:0.1.0",
        "ghcr.io/indextts-k8s/operator:0.1.0",
        "ghcr.io/indextts-k8s/inference:0.1.0-cpu",
    ]
    assert tools.index("helm") > max(i for i, call in enumerate(calls) if "patch" in call), (
        "GPUs before install"
    )
    (install,) = [call for call in calls if call[0] == "helm"]
    assert install[1:5] == ["upgrade", "--install", "tts", "charts/indextts"]
    joined = " ".join(install)
    assert "--values charts/indextts/values-cpu.yaml --values e2e/values-kind.yaml" in joined
    assert "--namespace indextts --create-namespace" in joined
    assert "--kube-context kind-indextts" in joined
    assert "--wait" in install


def test_kind_up_advertises_fake_gpus_with_a_valid_status_patch(tmp_path: Path) -> None:
    (patch,) = [call for call in run_kind_up(tmp_path) if "patch" in call]
    assert patch[:4] == ["kubectl", "--context", "kind-indextts", "patch"]
    assert "node/indextts-control-plane" in patch
    assert "--subresource=status" in patch
    assert "--type=json" in patch
    operations = json.loads(patch[patch.index("-p") + 1])
    assert operations == [
        {"op": "add", "path": "/status/capacity/nvidia.com~1gpu", "value": "4"},
        {"op": "add", "path": "/status/allocatable/nvidia.com~1gpu", "value": "4"},
    ]


def test_kind_up_says_what_is_missing_without_kind(tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    done = subprocess.run(  # noqa: S603 (bash, the project's script)
        ["/bin/bash", str(REPO / "scripts" / "kind_up.sh")],
        env={"PATH": str(empty), "HOME": str(tmp_path), "HELM": "/bin/true", "KUBECTL": "/bin/true"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "kind is not installed" in done.stderr
