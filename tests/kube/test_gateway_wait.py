"""A synchronous request's wait on a real API server, with the chart's RBAC: the gateway watches its
workflow from the version it read and sees the operator's status writes as they land."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.kubernetes_backend import KubernetesBackend
from kube_access.workflows import Workflows
from tests.chart.helm import NAMESPACE
from tests.kube.apiserver import RealApiServer
from tests.kube.test_apiserver import GATEWAY, OPERATOR, as_service_account
from tts_api.constants import Phase
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
