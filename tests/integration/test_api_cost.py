"""What workflows cost the Kubernetes API, as the API server counts it (``apiserver_request_total``,
:mod:`kube_testbed.request_counts`): a batch through the gateway, then the batch's deletion, on the
session's stack. Nothing else talks to the server meanwhile: the snapshots are non-resource reads, and
the checks that read workflows come before the first snapshot or after the last.

The figures by route are printed (``pytest -s`` shows them). What is asserted holds however many
writes someone cuts: one object created a request, at least one status write a workflow, one delete a
deletion, no refusal, no write of the clients on anything but the workflows, their Events and the
operator's Lease (the server's own requests set apart), and every request served to the stack's
ServiceAccounts."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import httpx

from kube_testbed.components import wait_until
from kube_testbed.request_counts import WORKFLOW_RESOURCES, Cost, RequestCounts, cost, settle, snapshot
from kube_testbed.stack import Stack
from tests.integration.test_workflows import speech, status_of, submit

WORKFLOWS = 20
CLIENTS = 4
# Written whether workflows run or not: the operator's Lease (leader election, renewed every 2 s here).
# What the server writes itself (the endpoints of its `kubernetes` Service) is not the clients'.
BACKGROUND_RESOURCES = ("leases",)


def run_batch(stack: Stack, prefix: str) -> list[str]:
    """``WORKFLOWS`` synchronous requests from ``CLIENTS`` threads; their ids, every one a success."""
    gateway = stack.gateway
    assert gateway is not None

    def post(index: int) -> str:
        with httpx.Client(base_url=gateway.url, timeout=60) as http:
            answer = http.post("/v1/workflows", json=speech(f"{prefix}-{index}"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "success", answer.json()
        workflow_id: str = answer.json()["workflow_id"]
        return workflow_id

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        return list(pool.map(post, range(WORKFLOWS)))


def unaccounted_writes(window: RequestCounts) -> dict[str, int]:
    known = {*WORKFLOW_RESOURCES, *BACKGROUND_RESOURCES}
    return {
        f"{route.label} ({route.code})": count
        for route, count in window.clients().resource_requests().counts.items()
        if route.is_write and route.resource not in known
    }


def show(title: str, figures: Cost) -> None:
    print(f"\n{title}\n{figures.table()}")


def assert_served_to_the_stack(figures: Cost) -> None:
    """Every request served to a client (no watch: those bypass Priority and Fairness) was dispatched
    for a ServiceAccount, and every such dispatch was served (1.20 does not count a refused request as
    served: a 403 shows as a dispatch too many). One Lease request in flight at either end of the
    window is counted by one counter and not by the other: a difference of one is no finding."""
    difference = figures.service_account_requests - figures.unwatched_requests
    assert abs(difference) <= 1, (
        f"dispatched for ServiceAccounts {figures.service_account_requests}, served to clients"
        f" {figures.unwatched_requests}: requests of someone else, or refused ones"
    )


def test_each_workflow_is_created_once_and_costs_a_bounded_number_of_writes(stack: Stack) -> None:
    before = snapshot(stack.api)
    run_batch(stack, "api-cost")
    window = settle(stack.api).minus(before)
    figures = cost(window, WORKFLOWS)
    show(f"the API's cost of {WORKFLOWS} workflows (synchronous POST, {CLIENTS} clients):", figures)

    created = window.where(verb="POST", resource="ttsworkflows", subresource="")
    assert created.total() == WORKFLOWS, f"one object a request: {created.by_label()}"
    assert created.by_code() == {"201": WORKFLOWS}
    status_writes = window.where(verb="PATCH", resource="ttsworkflows", subresource="status", code="200")
    assert status_writes.total() >= WORKFLOWS, "every workflow's outcome was written to its status"
    assert window.where(resource="ttsworkflows", verb="DELETE").total() == 0
    posted = window.where(verb="POST", resource="events")
    assert posted.total() == 0, f"a workflow that succeeds posts no Event by default: {posted.by_label()}"
    assert not figures.refused, f"refused under the chart's RBAC: {dict(figures.refused)}"
    assert not unaccounted_writes(window), f"writes of something else: {unaccounted_writes(window)}"
    assert_served_to_the_stack(figures)
    assert math.isfinite(figures.writes_per_workflow)
    assert figures.writes_per_workflow >= 2, "at least the create and a status write each"
    assert figures.requests_per_workflow >= figures.writes_per_workflow


def test_deleting_workflows_through_the_gateway_costs_one_delete_each(stack: Stack) -> None:
    with stack.client() as http:
        ids = [submit(http, speech(f"api-cost-deleted-{index}")) for index in range(WORKFLOWS)]
        wait_until(
            lambda: all(status_of(http, workflow_id)["status"] == "succeeded" for workflow_id in ids),
            60,
            f"all {WORKFLOWS} succeeded",
        )
        before = settle(stack.api)  # the operator's last writes about them landed before the window
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            answers = list(pool.map(lambda workflow_id: http.delete(f"/v1/workflows/{workflow_id}"), ids))
        assert [answer.status_code for answer in answers] == [200] * WORKFLOWS
        window = settle(stack.api).minus(before)
        left = [
            workflow_id
            for workflow_id in ids
            if http.get(f"/v1/workflows/status/{workflow_id}").status_code != 404
        ]
    assert not left, f"still there once the deletions settled: {left}"
    figures = cost(window, WORKFLOWS)
    show(f"the API's cost of deleting {WORKFLOWS} finished workflows (DELETE /v1/workflows/{{id}}):", figures)

    deleted = window.where(verb="DELETE", resource="ttsworkflows")
    assert deleted.total() == WORKFLOWS, f"one delete a deletion: {deleted.by_label()}"
    assert window.where(verb="POST", resource="ttsworkflows").total() == 0
    assert not figures.refused, f"refused under the chart's RBAC: {dict(figures.refused)}"
    assert not unaccounted_writes(window), f"writes of something else: {unaccounted_writes(window)}"
    assert_served_to_the_stack(figures)
    assert 1 <= figures.writes_per_workflow < math.inf
