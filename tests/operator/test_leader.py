"""High availability: the settings as the election's timing, and the operator's elector against kmock
(the gauge, the logs, the callbacks in their event loop, a leader cut off from the API server).

What the API server decides (one holder, expiry, release, clock skew) is tested on a real one:
tests/kube/test_leader_election.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY

from kube_access.client import api_client
from kube_access.cluster import Leases
from kube_access.leader_election import ElectionTiming
from tests.operator.cluster import emulated_api_server
from tts_operator.leader import LeaderElector, election_timing

LEASE = "indextts-operator"


@pytest.mark.parametrize(
    ("duration", "renew_every", "expected"),
    [
        (15, 5, ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=5)),  # the defaults
        (3, 1, ElectionTiming(lease_duration=3, renew_deadline=2, retry_period=1)),
        (14.6, 2, ElectionTiming(lease_duration=15, renew_deadline=10, retry_period=2)),  # whole seconds
    ],
)
def test_the_settings_become_the_libraries_timing(
    duration: float, renew_every: float, expected: ElectionTiming
) -> None:
    assert election_timing(duration, renew_every) == expected


@pytest.mark.parametrize(
    ("duration", "renew_every", "why"),
    [
        (15, 0.5, "the retry period .* must be at least 1 s"),
        (15, 9, r"the renew deadline \(10 s\) must be more than 1.2 × the retry period \(9 s\)"),
        (1, 1, "the retry period|the renew deadline"),
    ],
)
def test_settings_that_make_no_valid_election_are_refused_naming_them(
    duration: float, renew_every: float, why: str
) -> None:
    with pytest.raises(ValueError, match="TTS_OPERATOR_LEASE_DURATION_SECONDS=") as refused:
        election_timing(duration, renew_every)
    assert "TTS_OPERATOR_LEASE_RENEW_SECONDS=" in str(refused.value)
    assert refused.match(why)


@pytest.fixture
def api_url() -> Iterator[str]:
    with emulated_api_server() as url:
        yield url


def elector(url: str, identity: str, lost: list[str] | None = None) -> LeaderElector:
    return LeaderElector(
        api_client(url),
        name=LEASE,
        namespace="default",
        identity=identity,
        duration=3,
        renew_every=1,
        on_lost=(lambda: lost.append(identity)) if lost is not None else None,
    )


def gauge() -> float | None:
    return REGISTRY.get_sample_value("tts_operator_leader")


async def test_the_leader_sets_the_gauge_and_a_standby_takes_over_on_release(
    api_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    lost: list[str] = []
    first, second = elector(api_url, "replica-a", lost), elector(api_url, "replica-b", lost)
    await asyncio.wait_for(first.acquire(), 5)
    assert first.leading
    assert gauge() == 1
    standby = asyncio.create_task(second.acquire())
    await asyncio.sleep(3.5)  # longer than the lease: the leader keeps renewing it
    assert not standby.done()
    assert not second.leading
    await first.release()
    assert gauge() == 0
    assert not first.leading
    await asyncio.wait_for(standby, 15)
    assert second.leading
    await second.release()
    assert lost == [], "a release is no loss"
    messages = [record.getMessage() for record in caplog.records]
    assert "leading: Lease default/indextts-operator held by replica-a" in messages
    assert "leading: Lease default/indextts-operator held by replica-b" in messages
    assert "released the Lease default/indextts-operator" in messages
    assert (
        sum(m.startswith("waiting to lead: Lease default/indextts-operator as replica-b") for m in messages)
        == 1
    )


async def test_losing_the_lease_calls_back_in_the_event_loop_it_was_registered_from(api_url: str) -> None:
    """The handlers cancel a task from their callback: it must run in kopf's event loop."""
    lost: list[str] = []
    leader = elector(api_url, "replica-a", lost)
    await asyncio.wait_for(leader.acquire(), 5)
    called_in: list[int] = []
    called = asyncio.Event()

    def in_the_loop() -> None:
        called_in.append(threading.get_ident())
        called.set()

    leader.on_lost(in_the_loop)
    # Another writer takes the Lease. kmock checks no resourceVersion, so the last writer wins: a
    # renewal read before the intruder's write and written after it takes the Lease back, and the
    # intruder writes again until the leader has seen it lost.
    intruder = Leases(api_client(api_url), timeout=5)
    deadline = asyncio.get_running_loop().time() + 30
    while not called.is_set():
        assert asyncio.get_running_loop().time() < deadline, "the leader never saw the Lease lost"
        await asyncio.to_thread(
            intruder.patch, "default", LEASE, {"holderIdentity": "intruder"}, resource_version=None
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(called.wait(), 3)
    assert called_in == [threading.get_ident()]
    await asyncio.sleep(0.1)
    assert lost == ["replica-a"], "the constructor's callback ran too, after the one registered last"
    assert not leader.leading
    assert gauge() == 0
    await leader.release()  # nothing to release: the Lease is another's
    lease = await asyncio.to_thread(intruder.read, "default", LEASE)
    assert lease is not None
    assert lease.spec is not None
    assert lease.spec.holder_identity == "intruder"


def test_a_leader_cut_off_from_the_api_server_stops_within_its_renew_deadline() -> None:
    """Cut off just after a renewal, the library alone would go on for a retry period, its deadline
    and another retry period (4 s here); the elector stops leading on its own clock at the deadline
    (2 s after that renewal began)."""
    lost = threading.Event()
    with emulated_api_server() as url:
        leader = LeaderElector(
            api_client(url), name=LEASE, namespace="default", identity="replica-a",
            duration=3, renew_every=1, on_lost=lost.set,
        )  # fmt: skip
        asyncio.run(asyncio.wait_for(leader.acquire(), 5))
        assert leader.leading
        leases = Leases(api_client(url), timeout=2)

        def renewed() -> object:
            lease = leases.read("default", LEASE)
            assert lease is not None
            assert lease.spec is not None
            return lease.spec.renew_time

        first = renewed()
        while renewed() == first:
            time.sleep(0.02)
    cut_off = time.monotonic()  # just after a renewal; the server is gone: its port refuses connections
    assert lost.wait(5), "the loss is called back"
    took = time.monotonic() - cut_off
    assert not leader.leading
    assert took <= leader.timing.renew_deadline + 0.3, took
