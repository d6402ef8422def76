"""The operator's leader election (``kube_access.leader_election``, the Kubernetes client's
``kubernetes.leaderelection``) on a real API server: the chart's Lease, as the chart's operator
ServiceAccount (its RBAC as rendered), two replicas at a time.

Short durations keep the tests fast: a 3 s lease, a 2 s renew deadline, a look every second. Clock
skew is one replica's clock an hour off (the library's ``time``, in that replica's election thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException
from kubernetes.leaderelection import leaderelection as library

from kube_access.leader_election import ElectionTiming, LeaseElection
from kube_access.workflows import MERGE_PATCH
from kube_testbed.apiserver import RealApiServer
from kube_testbed.helm import NAMESPACE, Helm, fetch_helm, named
from tests.kube.test_apiserver import OPERATOR, as_service_account

TIMING = ElectionTiming(lease_duration=3, renew_deadline=2.0, retry_period=1.0)
# The chart's Lease (templates/operator-lease.yaml) is named as the operator.
LEASE = OPERATOR
HOUR = 3600.0
# How long a standby may take over a Lease its leader stopped renewing (brief).
TAKEOVER_LIMIT = TIMING.lease_duration + 5.0


class ThreadClock:
    """The library's ``time`` module, with an offset in the election thread of chosen replicas."""

    def __init__(self) -> None:
        self.offsets: dict[str, float] = {}

    def time(self) -> float:
        return time.time() + self.offsets.get(threading.current_thread().name, 0.0)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@pytest.fixture(scope="session")
def chart_lease_manifest() -> dict[str, Any]:
    """The Lease as the chart renders it (default values: leader election on)."""
    return named(Helm(fetch_helm()).template(), "Lease", LEASE)


@pytest.fixture
def chart_lease(
    kube_api: RealApiServer, chart_rbac: list[dict[str, Any]], chart_lease_manifest: dict[str, Any]
) -> str:
    """The chart's Lease, made afresh (holder empty) in the release namespace; its name."""
    with kube_api.api_client() as admin:
        leases = client.CoordinationV1Api(admin)
        try:
            leases.delete_namespaced_lease(LEASE, NAMESPACE)
        except ApiException as exc:
            if exc.status != 404:
                raise
        leases.create_namespaced_lease(NAMESPACE, chart_lease_manifest)  # type: ignore[arg-type]
    return LEASE


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ThreadClock:
    fake = ThreadClock()
    monkeypatch.setattr(library, "time", fake)
    return fake


Replica = Callable[..., LeaseElection]


@pytest.fixture
def replica(
    kube_api: RealApiServer, chart_rbac: list[dict[str, Any]], chart_lease: str, clock: ThreadClock
) -> Iterator[Replica]:
    """Make a started replica: ``replica("a", skew=-3600)``; each with a client of its own, as the
    chart's operator ServiceAccount (a TokenRequest token); all stopped at the end."""
    made: list[tuple[LeaseElection, client.ApiClient]] = []

    def make(identity: str, *, skew: float = 0.0, lost: list[str] | None = None) -> LeaseElection:
        api = as_service_account(kube_api, OPERATOR)
        election = LeaseElection(
            api,
            name=chart_lease,
            namespace=NAMESPACE,
            identity=identity,
            timing=TIMING,
            on_lost=(lost.append if lost is not None else lambda _reason: None),
        )
        clock.offsets[election.thread_name] = skew
        made.append((election, api))
        election.start()
        return election

    yield make
    for election, _api in made:
        election.stop()
    for election, api in made:
        assert election.join(TIMING.retry_period + 5), f"{election.identity}'s threads ended"
        api.close()  # type: ignore[no-untyped-call]


def wait_for(condition: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until ``condition`` holds (polled every 50 ms); fails after ``within``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            pytest.fail(f"not within {within:g} s: {what}")
        time.sleep(0.05)
    return time.monotonic() - started


def lease_spec(kube_api: RealApiServer) -> Any:
    with kube_api.api_client() as admin:
        return client.CoordinationV1Api(admin).read_namespaced_lease(LEASE, NAMESPACE).spec


def leader_of(*replicas: LeaseElection) -> LeaseElection:
    (leader,) = [replica for replica in replicas if replica.leading]
    return leader


# --- one leader ---------------------------------------------------------------------------------


def test_of_two_replicas_exactly_one_leads_and_keeps_leading(
    replica: Replica, kube_api: RealApiServer
) -> None:
    lost: list[str] = []
    a, b = replica("replica-a", lost=lost), replica("replica-b", lost=lost)  # racing for the empty Lease
    wait_for(lambda: a.leading or b.leading, within=5, what="one of them leads")
    leader = leader_of(a, b)
    first_renewal = lease_spec(kube_api).renew_time
    # Two lease durations: the standby must never take a Lease that is being renewed.
    deadline = time.monotonic() + 2 * TIMING.lease_duration
    while time.monotonic() < deadline:
        assert leader_of(a, b) is leader
        time.sleep(0.05)
    spec = lease_spec(kube_api)
    assert spec.holder_identity == leader.identity
    assert spec.lease_duration_seconds == TIMING.lease_duration
    assert spec.renew_time > first_renewal, "the leader renews"
    assert spec.lease_transitions == 1, "taken once, from the chart's empty Lease"
    assert lost == []


def test_a_standby_logs_who_holds_the_lease_once_and_nothing_per_look(
    replica: Replica, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a = replica("replica-a")
    wait_for(lambda: a.leading, within=5, what="replica-a leads")
    replica("replica-b")
    time.sleep(4 * TIMING.retry_period)  # four looks at the Lease
    messages = [record.getMessage() for record in caplog.records]
    assert not [record for record in caplog.records if record.name == "leaderelection"], messages
    assert messages.count(f"the Lease {NAMESPACE}/{LEASE} is held by replica-a") == 1, messages


# --- failover -----------------------------------------------------------------------------------


def test_a_leader_that_stops_renewing_is_replaced_once_the_lease_expires(
    replica: Replica, kube_api: RealApiServer
) -> None:
    a = replica("replica-a")
    wait_for(lambda: a.leading, within=5, what="replica-a leads")
    b = replica("replica-b")
    time.sleep(TIMING.retry_period * 1.5)  # b has looked at the Lease
    a.stop()  # as if SIGKILLed: no more renewals, nothing released
    took = wait_for(lambda: b.leading, within=TAKEOVER_LIMIT, what="replica-b takes the expired Lease")
    print(f"failover after a silent leader: {took:.2f} s")
    assert took >= TIMING.lease_duration - TIMING.retry_period, "not before the Lease expired"
    assert lease_spec(kube_api).holder_identity == "replica-b"
    assert lease_spec(kube_api).lease_transitions == 2


def test_a_released_lease_is_taken_at_the_standbys_next_look(
    replica: Replica, kube_api: RealApiServer
) -> None:
    lost: list[str] = []
    a = replica("replica-a", lost=lost)
    wait_for(lambda: a.leading, within=5, what="replica-a leads")
    b = replica("replica-b")
    time.sleep(TIMING.retry_period * 1.5)
    assert a.release() is True
    assert not a.leading
    assert lease_spec(kube_api).holder_identity in (None, "replica-b")
    took = wait_for(lambda: b.leading, within=2.0, what="replica-b takes the released Lease")
    print(f"failover after a release: {took:.2f} s")
    assert lease_spec(kube_api).holder_identity == "replica-b"
    assert lost == [], "a release is no loss"
    assert a.release() is False, "nothing left to release"


def test_a_leader_sees_another_holder_and_stops_leading_at_once(
    replica: Replica, kube_api: RealApiServer
) -> None:
    """Someone else's write wins (here: an admin's): the leader stops at its next renewal."""
    lost: list[str] = []
    a = replica("replica-a", lost=lost)
    wait_for(lambda: a.leading, within=5, what="replica-a leads")
    with kube_api.api_client() as admin:
        client.CoordinationV1Api(admin).patch_namespaced_lease(
            LEASE, NAMESPACE, {"spec": {"holderIdentity": "intruder"}}, _content_type=MERGE_PATCH
        )
    took = wait_for(lambda: not a.leading, within=TIMING.retry_period + 1, what="replica-a stops")
    assert took < TIMING.renew_deadline, "at its next look, not at its deadline"
    assert lost == [f"intruder holds the Lease {NAMESPACE}/{LEASE} now"]
    assert a.join(TIMING.retry_period + 2), "its election ended"


# --- clock skew ---------------------------------------------------------------------------------


def renewed_offset(kube_api: RealApiServer) -> float:
    """How far the Lease's renewTime is from now, in seconds."""
    renewed: datetime = lease_spec(kube_api).renew_time
    return (renewed - datetime.now(UTC)).total_seconds()


@pytest.mark.parametrize("skew", [-HOUR, HOUR], ids=["an-hour-behind", "an-hour-ahead"])
def test_a_skewed_leader_is_not_replaced_while_it_renews_and_is_once_it_stops(
    replica: Replica, kube_api: RealApiServer, skew: float
) -> None:
    a = replica("skewed-leader", skew=skew)
    wait_for(lambda: a.leading, within=5, what="the skewed replica leads")
    b = replica("replica-b")
    assert abs(renewed_offset(kube_api) - skew) < 60, "the Lease carries the skewed clock's times"
    # Longer than a lease: judged by its renewTime, the Lease would be taken at the first look (an
    # hour behind) or never (an hour ahead, even once it stops).
    deadline = time.monotonic() + TIMING.lease_duration + TIMING.retry_period
    while time.monotonic() < deadline:
        assert a.leading
        assert not b.leading, "a Lease being renewed is not taken, whatever its renewTime says"
        time.sleep(0.05)
    a.stop()
    took = wait_for(lambda: b.leading, within=TAKEOVER_LIMIT, what="the standby takes the expired Lease")
    print(f"failover after a silent leader {skew:+.0f} s off: {took:.2f} s")
    assert abs(renewed_offset(kube_api)) < 60


@pytest.mark.parametrize("skew", [-HOUR, HOUR], ids=["an-hour-behind", "an-hour-ahead"])
def test_a_standby_whose_clock_is_off_takes_an_expired_lease(
    replica: Replica, kube_api: RealApiServer, skew: float
) -> None:
    a = replica("replica-a")
    wait_for(lambda: a.leading, within=5, what="replica-a leads")
    b = replica("skewed-standby", skew=skew)
    time.sleep(2 * TIMING.retry_period)
    assert not b.leading
    a.stop()
    took = wait_for(lambda: b.leading, within=TAKEOVER_LIMIT, what="the skewed standby takes over")
    print(f"failover to a standby {skew:+.0f} s off: {took:.2f} s")
    assert took >= TIMING.lease_duration - TIMING.retry_period, "not before the Lease expired"
    assert lease_spec(kube_api).holder_identity == "skewed-standby"
    assert abs(renewed_offset(kube_api) - skew) < 60
