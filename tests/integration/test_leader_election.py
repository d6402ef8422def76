"""Two operator replicas on the real API server, as the chart runs them (leader election on, the
chart's Lease and RBAC): one reconciles, the other stands by; when the leader is SIGKILLed, the
standby reconciles within the Lease's duration plus 5 s."""

from __future__ import annotations

import time

from kube_testbed.components import wait_until
from kube_testbed.stack import LEASE_NAME, OPERATOR_ENV, Stack
from tests.integration.test_workflows import speech, status_of, submit

LEASE_SECONDS = float(OPERATOR_ENV["TTS_OPERATOR_LEASE_DURATION_SECONDS"])


def holder(stack: Stack) -> str | None:
    from kubernetes import client

    with stack.api.api_client() as admin:
        lease = client.CoordinationV1Api(admin).read_namespaced_lease(LEASE_NAME, stack.namespace)
    return lease.spec.holder_identity if lease.spec else None


def test_the_standby_takes_over_within_the_lease_when_the_leader_is_killed(stack: Stack) -> None:
    assert stack.operator is not None
    stack.operator.stop()  # graceful: it releases the Lease
    stack.retired.append(stack.operator)
    stack.operator = None
    replicas = {name: stack.new_operator(name) for name in ("replica-a", "replica-b")}
    try:
        wait_until(lambda: holder(stack) in replicas, 30, "one replica holds the Lease")
        leader_name = holder(stack)
        assert leader_name is not None
        leader = replicas[leader_name]
        (standby,) = [replica for name, replica in replicas.items() if name != leader_name]
        leader.wait_for_log(r"operator connected to NATS", timeout=30)
        with stack.client() as http:
            first = submit(http, speech("under-the-leader"))
            wait_until(lambda: status_of(http, first)["status"] == "succeeded", 30, "done by the leader")
            assert "operator connected to NATS" not in standby.log(), "the standby runs no kopf"

            leader.kill()
            killed = time.monotonic()
            after = submit(http, speech("after-the-leader"))
            wait_until(
                lambda: status_of(http, after)["status"] == "succeeded",
                LEASE_SECONDS + 5,
                "the standby reconciled within the Lease's duration plus 5 s",
            )
            took = time.monotonic() - killed
        assert holder(stack) == standby.name
        print(f"failover: a workflow submitted at the leader's SIGKILL succeeded after {took:.1f} s")
    finally:
        for replica in replicas.values():
            replica.stop()
        stack.restart_operator()
