"""`kubectl apply` of the example manifests, then `kubectl wait --for=condition=Succeeded`."""

from __future__ import annotations

import pytest

from e2e.cluster import Cluster, example

EXAMPLES = ["basic", "emotion", "health-check", "voice-cloning"]
TIMEOUT_SECONDS = 180


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_example_manifest_succeeds(cluster: Cluster, reference_voice: str, name: str) -> None:
    manifest = example(name)
    workflow = manifest["metadata"]["name"]
    cluster.delete_workflow(workflow)  # a rerun starts afresh
    cluster.apply(manifest)
    try:
        cluster.wait_for_condition(workflow, "Succeeded", timeout=TIMEOUT_SECONDS)
    except Exception as exc:
        raise AssertionError(f"{name}: {exc}\n{cluster.describe_workflow(workflow)}") from exc
    status = cluster.workflow_status(workflow)
    assert status.phase == "Succeeded"
    assert status.progress == 100
    assert all(stage.state == "Succeeded" for stage in status.stages)
    if "outputPath" in manifest["spec"]["workflowConfig"].get("indexttsConfig", {}):
        assert status.result is not None, "a speech workflow carries its result in status"


def test_a_workflow_shows_its_heartbeat_and_conditions(cluster: Cluster) -> None:
    manifest = example("basic")
    cluster.delete_workflow("hello")
    cluster.apply(manifest)
    cluster.wait_for_condition("hello", "Succeeded", timeout=TIMEOUT_SECONDS)
    status = cluster.workflow_status("hello")
    assert status.heartbeat is not None
    assert status.heartbeat.pod in {pod["metadata"]["name"] for pod in cluster.pods("inference")}
    conditions = {str(condition.type): str(condition.status) for condition in status.conditions}
    assert conditions.get("Succeeded") == "True"
