"""The gateway on a real API server, with the chart's RBAC: a synchronous request watches its workflow
from the version it read and sees the operator's status writes as they land; a workflow the operator
failed as invalid is shown with its status."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.kubernetes_backend import KubernetesBackend
from kube_access.workflows import Workflows
from kube_testbed.apiserver import RealApiServer
from kube_testbed.helm import NAMESPACE
from tests.gateway.test_kubernetes_backend import gateway_over
from tests.kube.test_apiserver import GATEWAY, OPERATOR, as_service_account
from tests.operator.cluster import eventually
from tts_api.constants import API_GROUP_VERSION, KIND, Phase
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow, TTSWorkflowSpec

SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})


def finished(workflow: TTSWorkflow) -> bool:
    return workflow.status.phase.finished


@pytest.mark.usefixtures("chart_rbac")
async def test_the_wait_follows_the_operators_status_writes_through_a_watch(
    kube_api: RealApiServer,
    kube_crd: dict[str, Any],
    unmounted_policy: ValidationPolicy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.kubernetes_backend")
    with as_service_account(kube_api, GATEWAY) as gateway_api, as_service_account(kube_api, OPERATOR) as op:
        backend = KubernetesBackend(gateway_api, NAMESPACE, unmounted_policy)
        operator = Workflows(op)
        await backend.create("waited-on", SPEC)

        async def operate() -> None:
            await asyncio.sleep(0.3)
            await operator.patch_status(NAMESPACE, "waited-on", {"phase": "Running"})
            await asyncio.sleep(0.3)
            await operator.patch_status(NAMESPACE, "waited-on", {"phase": "Succeeded"})

        writing = asyncio.create_task(operate())
        done = await backend.wait("waited-on", finished, wait_seconds=30)
        await writing
        assert done is not None
        assert done.status.phase is Phase.SUCCEEDED

        # A wait whose condition never holds answers the latest state when its time is up.
        latest = await backend.wait("waited-on", lambda _: False, wait_seconds=1.5)
        assert latest is not None
        assert latest.status.phase is Phase.SUCCEEDED

        # A workflow deleted while waited on ends the wait with nothing.
        async def delete() -> None:
            await asyncio.sleep(0.3)
            assert await backend.delete("waited-on")

        deleting = asyncio.create_task(delete())
        assert await backend.wait("waited-on", lambda _: False, wait_seconds=30) is None
        await deleting
    assert not [r for r in caplog.records if "watching workflow" in r.getMessage()], "no watch failed"


@pytest.mark.usefixtures("chart_rbac")
async def test_a_workflow_the_operator_failed_as_invalid_is_shown_not_hidden(
    kube_api: RealApiServer, kube_crd: dict[str, Any], nats_url: str, unmounted_policy: ValidationPolicy
) -> None:
    """Made with kubectl (the schema admits it), refused by the operator: the gateway shows its status."""
    outside = {
        "apiVersion": API_GROUP_VERSION,
        "kind": KIND,
        "metadata": {"name": "outside-the-share"},
        "spec": {
            "workflowConfig": {
                "workflowChain": ["indextts.generate_speech"],
                "indexttsConfig": {"text": "hi", "outputPath": "/elsewhere/out.wav"},
            }
        },
    }
    failed = {
        "phase": "Failed",
        "error": {
            "code": "INVALID_INPUT",
            "message": "spec.workflowConfig.indexttsConfig.outputPath: outside",
        },
    }
    with kube_api.api_client() as admin:
        await Workflows(admin).create(NAMESPACE, outside)
    with as_service_account(kube_api, OPERATOR) as op:
        await Workflows(op).patch_status(NAMESPACE, "outside-the-share", failed)
    with as_service_account(kube_api, GATEWAY) as gateway_api:
        async with gateway_over(gateway_api, nats_url, unmounted_policy, NAMESPACE) as client:
            status = await client.get("/v1/workflows/status/outside-the-share")
            result = await client.get("/v1/workflows/outside-the-share")
            statistics = (await client.get("/api/v1/monitoring/statistics")).json()
            assert (await client.delete("/v1/workflows/outside-the-share")).status_code == 200
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "failed"
    assert result.status_code == 400
    assert result.json()["error_code"] == "INVALID_INPUT"
    assert "outputPath" in result.json()["error"]
    assert statistics["system"]["failed_tasks"] >= 1


@pytest.mark.usefixtures("chart_rbac")
async def test_the_monitoring_tally_lists_in_pages_then_follows_every_change(
    kube_api: RealApiServer, kube_crd: dict[str, Any], unmounted_policy: ValidationPolicy
) -> None:
    """With the chart's Role: a listing in pages (the ``continue`` token) gives every workflow once,
    however small the page; the tally then follows the operator's status writes and the deletions
    through one watch of the namespace, reading no workflow when asked."""
    names = [f"tallied-{n}" for n in range(7)]
    with as_service_account(kube_api, GATEWAY) as gateway_api, as_service_account(kube_api, OPERATOR) as op:
        backend = KubernetesBackend(gateway_api, NAMESPACE, unmounted_policy)
        for name in names:
            await backend.create(name, SPEC)
        try:
            paged = [
                body["metadata"]["name"]
                async for page in Workflows(gateway_api).pages(NAMESPACE, page_size=2)
                for body in page.items
            ]
            assert sorted(set(names) & set(paged)) == names
            assert len(paged) == len(set(paged))

            before = await backend.tally()
            stage = {"name": "indextts.health_check", "attempt": 1}
            await Workflows(op).patch_status(
                NAMESPACE, names[0], {"phase": "Running", "stages": [{**stage, "state": "Running"}]}
            )
            done = {**stage, "state": "Succeeded", "output": {"processing_time": 0.5}}
            await Workflows(op).patch_status(NAMESPACE, names[1], {"phase": "Succeeded", "stages": [done]})

            async def followed() -> bool:
                now = await backend.tally()
                return now.succeeded == before.succeeded + 1 and names[0] in {
                    t.workflow_id for t in now.active
                }

            await eventually(followed, within=20, what="the status writes in the tally")
            assert (await backend.tally()).dispatched == before.dispatched + 2

            await backend.delete(names[1])

            async def forgotten() -> bool:
                return (await backend.tally()).succeeded == before.succeeded

            await eventually(forgotten, within=20, what="the deletion in the tally")
        finally:
            for name in names:
                await backend.delete(name)
            await backend.close()
