"""The API server itself refuses a bad TTSWorkflow, naming the field (the CRD's schema and CEL rules)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from e2e.cluster import Cluster, CommandError, example, unique_name

Mutation = Callable[[dict[str, Any]], None]


def config(manifest: dict[str, Any]) -> dict[str, Any]:
    indextts: dict[str, Any] = manifest["spec"]["workflowConfig"]["indexttsConfig"]
    return indextts


BAD_MANIFESTS: dict[str, tuple[Mutation, str]] = {
    "no text": (lambda m: config(m).pop("text"), "text"),
    "emotionAlpha of 2": (lambda m: config(m).update(emotionAlpha=2), "emotionAlpha"),
    "an emotionVector of 7 numbers": (lambda m: config(m).update(emotionVector=[0.1] * 7), "emotionVector"),
    "an unknown task": (
        lambda m: m["spec"]["workflowConfig"].update(workflowChain=["indextts.sing"]),
        "workflowChain",
    ),
    "an output path with ..": (lambda m: config(m).update(outputPath="/share/../etc/x.wav"), "outputPath"),
}


@pytest.mark.parametrize(("mutate", "field"), BAD_MANIFESTS.values(), ids=BAD_MANIFESTS.keys())
def test_the_api_server_rejects_a_bad_manifest(cluster: Cluster, mutate: Mutation, field: str) -> None:
    manifest = copy.deepcopy(example("basic"))
    manifest["metadata"]["name"] = unique_name("bad")
    mutate(manifest)
    with pytest.raises(CommandError) as refused:
        cluster.create(manifest)
    assert "is invalid" in refused.value.stderr
    assert field in refused.value.stderr
    stored = cluster.kubectl("get", "ttswf", manifest["metadata"]["name"], "--ignore-not-found", "-o", "name")
    assert stored == "", "nothing was stored"
