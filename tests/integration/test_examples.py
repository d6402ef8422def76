"""What a user does first, on a real API server with the chart's RBAC: the CRD from ``crds/`` is
Established, every file of ``examples/`` goes in with ``kubectl apply`` and comes out Succeeded under
``kubectl wait``, and an operator that has just started reconciles at once (no wait on refused
namespace or CRD watches)."""

from __future__ import annotations

import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_testbed.apiserver import REPO, find_assets
from kube_testbed.stack import Stack

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def kubectl(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """kubectl as the cluster's admin would run it (a user, not a component)."""
    return subprocess.run(  # noqa: S603 (the assets' kubectl)
        [str(find_assets().kubectl), f"--kubeconfig={stack.api.kubeconfig()}", "-n", stack.namespace, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def write_voice(path: Path, seconds: float = 1.0, rate: int = 16000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x01\x00" * int(seconds * rate))


def test_the_crd_from_crds_is_established(kube_crd: dict[str, Any]) -> None:
    source = yaml.safe_load((REPO / "crds" / "ttsworkflows.tts.indextts.io.yaml").read_text())
    assert kube_crd["metadata"]["name"] == source["metadata"]["name"]
    conditions = {c["type"]: c["status"] for c in kube_crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_every_example_applies_and_succeeds(stack: Stack, example: Path) -> None:
    name = yaml.safe_load(example.read_text())["metadata"]["name"]
    write_voice(stack.share_dir / "reference" / "target_voice.wav")
    kubectl(stack, "delete", "ttsworkflow", name, "--ignore-not-found", "--wait=true")
    applied = kubectl(stack, "apply", "-f", str(example))
    assert applied.returncode == 0, applied.stderr
    assert f"ttsworkflow.tts.indextts.io/{name} created" in applied.stdout
    waited = kubectl(stack, "wait", "--for=condition=Succeeded", f"ttsworkflow/{name}", "--timeout=90s")
    assert waited.returncode == 0, (
        f"{waited.stderr}\n{kubectl(stack, 'get', 'ttsworkflow', name, '-o', 'yaml').stdout}"
    )
    shown = kubectl(stack, "get", "ttsworkflow", name)
    assert shown.returncode == 0
    assert "Succeeded" in shown.stdout, shown.stdout  # the printer columns
    body = yaml.safe_load(kubectl(stack, "get", "ttsworkflow", name, "-o", "yaml").stdout)
    output = body["spec"].get("workflowConfig", {}).get("indexttsConfig", {}).get("outputPath")
    if output:
        written = stack.share_dir / Path(output).relative_to("/share")
        assert written.stat().st_size > 44, "a WAV with samples in it"
    assert kubectl(stack, "delete", "-f", str(example), "--wait=true").returncode == 0


def test_a_fresh_operator_reconciles_within_seconds(stack: Stack) -> None:
    """kopf watches only what the chart lets it: a new operator's first workflow is not kept waiting
    on refused namespace or CRD listings (those cost ~55 s of retries)."""
    operator = stack.restart_operator()
    started = time.monotonic()
    applied = kubectl(stack, "apply", "-f", str(REPO / "examples" / "health-check.yaml"))
    assert applied.returncode == 0, applied.stderr
    waited = kubectl(stack, "wait", "--for=condition=Succeeded", "ttsworkflow/health-check", "--timeout=60s")
    took = time.monotonic() - started
    assert waited.returncode == 0, operator.tail()
    assert took < 20, f"the first workflow after a start took {took:.1f} s"
    assert "Not enough permissions" not in operator.log()
    assert kubectl(stack, "delete", "ttsworkflow", "health-check", "--wait=true").returncode == 0
