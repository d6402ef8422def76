"""A TTSWorkflow's spec is immutable once created, on a real API server.

From Kubernetes 1.25 on, the CRD's CEL transition rule (``self == oldSelf`` on spec) makes the API
server refuse the edit. An older server drops the rule and admits the edit, bumping
``metadata.generation`` (and only a spec edit bumps it: status and metadata writes do not); the
operator's reconcile core then fails the workflow, reading the body back through the store the
operator uses.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from kube_access.workflows import MERGE_PATCH, Workflows
from kube_testbed.apiserver import CEL_RULES_SINCE, RealApiServer
from tts_api.constants import API_GROUP, API_GROUP_VERSION, API_VERSION, KIND, PLURAL, Phase
from tts_api.crd import SPEC_IMMUTABLE_RULE
from tts_api.errors import ErrorCode
from tts_api.policy import ValidationPolicy
from tts_operator.reconcile import (
    SPEC_CHANGED,
    Created,
    Decision,
    Limits,
    PostEvent,
    PublishCancel,
    Tick,
    Workflow,
    reconcile,
    spec_changed_message,
)
from tts_operator.runner import merge_patch
from tts_operator.store import KubernetesStore

NAME = "edited"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
# The operator does not mount the shared volume: paths are checked lexically.
POLICY = ValidationPolicy(shared_dir=Path("/nonexistent/indextts-share"), shared_prefix="/share")


def speech(name: str = NAME, text: str = "你好") -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {
            "workflowConfig": {
                "workflowChain": ["indextts.generate_speech"],
                "indexttsConfig": {"text": text, "outputPath": "/share/workflows/output/edited.wav"},
            }
        },
    }


def server_version(server: RealApiServer) -> str:
    return f"v{server.version[0]}.{server.version[1]}"


def merge(api: client.ApiClient, namespace: str, patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch of the main resource, as kubectl edit, kopf's finalizers and annotations."""
    patched: Any = client.CustomObjectsApi(api).patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, PLURAL, NAME, patch, _content_type=MERGE_PATCH
    )
    body: dict[str, Any] = patched
    return body


def operator_writes(api: client.ApiClient, namespace: str) -> None:
    """What the operator writes besides status: kopf's finalizer and its bookkeeping annotation."""
    merge(api, namespace, {"metadata": {"finalizers": [FINALIZER]}})
    merge(api, namespace, {"metadata": {"annotations": {f"{API_GROUP}/last-handled-configuration": "{}"}}})


async def record(store: KubernetesStore, workflow: Workflow, decision: Decision) -> None:
    """What the runner does with a decision, publishing aside: write the status, post the Events."""
    assert decision.status is not None
    await store.patch_status(workflow.ref, merge_patch(workflow.status.to_k8s(), decision.status.to_k8s()))
    for action in decision.actions:
        if isinstance(action, PostEvent):
            await store.post_event(workflow.ref, action.type, action.reason, action.message)


async def test_an_older_server_admits_a_spec_edit_and_the_operator_fails_the_workflow(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    if kube_api.version >= CEL_RULES_SINCE:
        pytest.skip(
            f"kube-apiserver {server_version(kube_api)} checks CEL rules and refuses the edit "
            "(test_a_cel_server_refuses_a_spec_edit covers it)"
        )
    limits = Limits()
    with kube_api.api_client() as api:
        workflows = Workflows(api)
        store = KubernetesStore(api, [kube_namespace])
        created = await workflows.create(kube_namespace, speech())
        assert created["metadata"]["generation"] == 1

        # The core accepts what the store reads back; the status goes through the subresource.
        workflow = await store.get(kube_namespace, NAME)
        assert workflow is not None
        assert workflow.generation == 1
        accepted = reconcile(workflow, Created(), now=datetime.now(UTC), limits=limits, policy=POLICY)
        await record(store, workflow, accepted)
        operator_writes(api, kube_namespace)

        # None of the operator's writes bumps the generation, so the core sees no edit.
        workflow = await store.get(kube_namespace, NAME)
        assert workflow is not None
        assert (workflow.generation, workflow.status.observed_generation) == (1, 1)
        assert workflow.status.phase == Phase.QUEUED
        quiet = reconcile(workflow, Tick(), now=datetime.now(UTC), limits=limits, policy=POLICY)
        assert quiet.status is None, "an unedited workflow is left as it is"

        # kubectl edit: this server has no CEL rules, so it admits the edit and bumps the generation.
        edited = merge(
            api, kube_namespace, {"spec": {"workflowConfig": {"indexttsConfig": {"text": "别的话"}}}}
        )
        assert edited["metadata"]["generation"] == 2
        assert edited["spec"]["workflowConfig"]["indexttsConfig"]["text"] == "别的话"

        workflow = await store.get(kube_namespace, NAME)
        assert workflow is not None
        assert (workflow.generation, workflow.status.observed_generation) == (2, 1)
        failed = reconcile(workflow, Tick(), now=datetime.now(UTC), limits=limits, policy=POLICY)
        assert [type(action) for action in failed.actions] == [PublishCancel, PostEvent]
        await record(store, workflow, failed)
        message = spec_changed_message(2, 1)

        stored = await workflows.get(kube_namespace, NAME)
        assert stored is not None
        assert stored["metadata"]["generation"] == 2
        status = stored["status"]
        assert status["phase"] == Phase.FAILED.value
        assert status["observedGeneration"] == 2
        assert status["error"] == {"code": ErrorCode.INVALID_INPUT.value, "message": message}
        reasons = {c["type"]: c["reason"] for c in status["conditions"]}
        assert reasons["Failed"] == SPEC_CHANGED
        events = client.CoreV1Api(api).list_namespaced_event(kube_namespace).items
        posted = [(e.type, e.reason, e.message) for e in events if e.involved_object.name == NAME]
        assert ("Warning", SPEC_CHANGED, f"INVALID_INPUT: {message}") in posted


async def test_a_cel_server_refuses_a_spec_edit(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    if kube_api.version < CEL_RULES_SINCE:
        pytest.skip(
            f"kube-apiserver {server_version(kube_api)} drops CEL rules (x-kubernetes-validations); "
            f"they are checked from v{CEL_RULES_SINCE[0]}.{CEL_RULES_SINCE[1]} on: point "
            "KUBEBUILDER_ASSETS at newer binaries to run this test"
        )
    with kube_api.api_client() as api:
        workflows = Workflows(api)
        await workflows.create(kube_namespace, speech())
        # The operator's writes pass the rule: status is a subresource, finalizers are metadata.
        await workflows.patch_status(kube_namespace, NAME, {"phase": "Running", "progress": 10})
        operator_writes(api, kube_namespace)

        with pytest.raises(ApiException) as refused:
            merge(api, kube_namespace, {"spec": {"workflowConfig": {"indexttsConfig": {"text": "别的话"}}}})
        assert refused.value.status == 422
        answer = json.loads(refused.value.body or "{}")
        assert SPEC_IMMUTABLE_RULE["message"] in answer.get("message", ""), answer

        stored = await workflows.get(kube_namespace, NAME)
        assert stored is not None
        assert stored["metadata"]["generation"] == 1
        assert stored["metadata"]["finalizers"] == [FINALIZER]
        assert stored["spec"]["workflowConfig"]["indexttsConfig"]["text"] == "你好"
        assert stored["status"]["phase"] == "Running"
