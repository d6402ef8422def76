"""An id that names no workflow, on the real API server with the chart's RBAC: every route that takes
one answers 404 ``WORKFLOW_NOT_FOUND`` (never created, deleted through the gateway, removed after
its time to live), and a malformed id 400 ``INVALID_INPUT`` naming ``workflow_id``."""

from __future__ import annotations

from typing import Any

from kube_testbed.components import wait_until
from kube_testbed.stack import Stack
from tests.gateway.conftest import ID_ROUTES, not_found_body
from tests.integration.test_workflows import create, phase, read, submit


def test_every_route_answers_workflow_not_found_for_an_id_that_names_none(stack: Stack) -> None:
    create(
        stack,
        "lived-its-time",
        {"ttlSecondsAfterFinished": 1, "workflowConfig": {"workflowChain": ["indextts.health_check"]}},
    )
    health: dict[str, Any] = {"workflow_config": {"workflow_chain": ["indextts.health_check"]}}
    with stack.client() as http:
        deleted = submit(http, health)
        assert http.delete(f"/v1/workflows/{deleted}").status_code == 200
        wait_until(lambda: read(stack, deleted) is None, 30, "deleted through the gateway")
        wait_until(lambda: phase(stack, "lived-its-time") == "Succeeded", 30, "Succeeded")
        wait_until(lambda: read(stack, "lived-its-time") is None, 15, "deleted after its time to live")

        for method, path in ID_ROUTES:
            for workflow_id in ("wf-0123456789abcdef", deleted, "lived-its-time"):
                answer = http.request(method, path.format(id=workflow_id))
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.json() == not_found_body(workflow_id)
            malformed = http.request(method, path.format(id="a%20b"))
            assert malformed.status_code == 400, (method, path, malformed.text)
            error = malformed.json()
            assert (error["error_code"], error["field"], error["workflow_id"]) == (
                "INVALID_INPUT",
                "workflow_id",
                None,
            )
