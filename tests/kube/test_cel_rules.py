"""The CRD's CEL rules on the workflow config, on a server that evaluates them (Kubernetes 1.25 and
later); on an older server the test says so and skips, and the operator's own validation is what
refuses such a spec (tests/api checks the rules on a model of the API server's checks)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiException

from kube_access.workflows import Workflows
from kube_testbed.apiserver import CEL_RULES_SINCE, RealApiServer
from tts_api.constants import API_GROUP_VERSION, KIND


def workflow(name: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_GROUP_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": config}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"workflowConfig": {"workflowChain": ["indextts.generate_speech"]}},
            "indexttsConfig is required when workflowChain includes indextts.generate_speech",
        ),
        (
            {
                "workflowConfig": {
                    "workflowChain": ["indextts.generate_speech"],
                    "indexttsConfig": {"outputPath": "/share/workflows/output/a.wav"},
                }
            },
            "indexttsConfig.text is required for indextts.generate_speech",
        ),
    ],
    ids=["no-config", "no-text"],
)
async def test_a_cel_server_refuses_speech_without_its_config(
    kube_api: RealApiServer,
    kube_crd: dict[str, Any],
    kube_namespace: str,
    config: dict[str, Any],
    message: str,
) -> None:
    if kube_api.version < CEL_RULES_SINCE:
        pytest.skip(
            f"kube-apiserver v{kube_api.version[0]}.{kube_api.version[1]} drops CEL rules "
            f"(x-kubernetes-validations); they are checked from v{CEL_RULES_SINCE[0]}.{CEL_RULES_SINCE[1]} "
            "on: point KUBEBUILDER_ASSETS at newer binaries to run this test"
        )
    with kube_api.api_client() as api, pytest.raises(ApiException) as refused:
        await Workflows(api).create(kube_namespace, workflow("refused-by-cel", config))
    assert refused.value.status == 422
    assert message in json.loads(refused.value.body or "{}").get("message", "")
