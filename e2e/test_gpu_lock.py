"""The GPU lock: a quota of 2 GPUs with 3 inference pods asked for → 2 pods, at most 2 syntheses at once."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from e2e.cluster import Cluster, eventually, max_overlap, unique_name
from e2e.conftest import SlowWorkers, gpu_quota

SYNTHESIS_SECONDS = 4.0
WORKFLOWS = 6


def speech(name: str) -> dict[str, object]:
    return {
        "apiVersion": "tts.indextts.io/v1alpha1",
        "kind": "TTSWorkflow",
        "metadata": {"name": name, "labels": {"e2e.indextts.io/test": "gpu-lock"}},
        "spec": {
            "workflowConfig": {
                "workflowChain": ["indextts.generate_speech"],
                "indexttsConfig": {
                    "text": "GPU lock test.",
                    "outputPath": f"/share/workflows/output/e2e/{name}.wav",
                },
            }
        },
    }


def test_the_quota_caps_inference_pods_and_concurrent_syntheses(
    cluster: Cluster, slow_workers: SlowWorkers
) -> None:
    quota = gpu_quota(cluster)
    if quota != 2:
        pytest.skip(f"needs the GPU quota of e2e/values-kind.yaml (2 GPUs); this release has {quota}")
    with slow_workers(3, SYNTHESIS_SECONDS):
        # Three pods asked for, two admitted: the ReplicaSet reports the quota refusing the third.
        assert len(cluster.pods("inference")) == 2
        events = cluster.kubectl("get", "events", "--field-selector", "reason=FailedCreate", "-o", "json")
        messages = [event["message"] for event in json.loads(events)["items"]]
        assert any("exceeded quota" in message and "nvidia.com/gpu" in message for message in messages), (
            messages
        )
        used = cluster.get("resourcequota", cluster.release.component("gpu-quota"))["status"]["used"]
        assert used["requests.nvidia.com/gpu"] == "2"

        names = [unique_name(f"lock{i}") for i in range(WORKFLOWS)]
        for name in names:
            cluster.create(speech(name))
        for name in names:
            cluster.wait_for_condition(name, "Succeeded", timeout=180)
        intervals = []
        for name in names:
            (stage,) = cluster.workflow_status(name).stages
            assert isinstance(stage.started_at, datetime)
            assert isinstance(stage.finished_at, datetime)
            intervals.append((stage.started_at.timestamp(), stage.finished_at.timestamp()))
        assert max_overlap(intervals) <= 2, intervals
        # Six jobs of 4 s on two pods take at least three rounds: the lock really serialised them.
        span = max(end for _, end in intervals) - min(start for start, _ in intervals)
        assert span >= 3 * SYNTHESIS_SECONDS * 0.9, span
        for name in names:
            cluster.delete_workflow(name)
    eventually(
        lambda: len(cluster.pods("inference")) <= 2, timeout=120, what="the release's own inference pods"
    )
