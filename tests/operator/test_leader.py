"""High availability: the Lease decision as a table, and two electors against kmock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kube_access.client import api_client
from tests.operator.cluster import emulated_api_server
from tts_operator.leader import LeaderElector, LeaseStep, lease_step

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def lease(holder: str | None, renewed_seconds_ago: float | None, duration: int = 15) -> dict[str, Any]:
    spec: dict[str, Any] = {"leaseDurationSeconds": duration}
    if holder is not None:
        spec["holderIdentity"] = holder
    if renewed_seconds_ago is not None:
        spec["renewTime"] = (NOW - timedelta(seconds=renewed_seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"metadata": {"name": "op"}, "spec": spec}


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, LeaseStep.CREATE),
        (lease("me", 3), LeaseStep.RENEW),
        (lease("me", 60), LeaseStep.RENEW),  # still ours: renewing late is allowed if nobody took it
        (lease("other", 3), LeaseStep.WAIT),
        (lease("other", 15), LeaseStep.WAIT),  # exactly at the limit: not yet expired
        (lease("other", 16), LeaseStep.TAKE),
        (lease(None, None), LeaseStep.TAKE),  # made empty by the chart, or released
        (lease("", 1), LeaseStep.TAKE),
        (lease("other", None), LeaseStep.TAKE),  # never renewed
    ],
    ids=["none", "ours", "ours-late", "theirs", "theirs-at-limit", "expired", "empty", "blank", "unrenewed"],
)
def test_lease_step(current: dict[str, Any] | None, expected: LeaseStep) -> None:
    assert lease_step(current, "me", NOW) == expected


@pytest.fixture
def api_url() -> Iterator[str]:
    with emulated_api_server() as url:
        yield url


def elector(url: str, identity: str, lost: list[str]) -> LeaderElector:
    return LeaderElector(
        api_client(url),
        name="indextts-operator",
        namespace="default",
        identity=identity,
        duration=1.0,
        renew_every=0.2,
        on_lost=lambda: lost.append(identity),
    )


async def test_one_of_two_replicas_leads_and_the_other_takes_over_on_release(api_url: str) -> None:
    lost: list[str] = []
    first, second = elector(api_url, "replica-a", lost), elector(api_url, "replica-b", lost)
    await asyncio.wait_for(first.acquire(), 5)
    standby = asyncio.create_task(second.acquire())
    await asyncio.sleep(1.5)  # longer than the lease: the leader keeps renewing it
    assert first.leading
    assert not second.leading
    assert not standby.done()
    await first.release()
    await asyncio.wait_for(standby, 5)
    assert second.leading
    assert not first.leading
    await second.release()
    assert lost == []


async def test_a_leader_that_stops_renewing_is_replaced(api_url: str) -> None:
    lost: list[str] = []
    first, second = elector(api_url, "replica-a", lost), elector(api_url, "replica-b", lost)
    assert await first.try_once()  # leads once, never renews (a frozen process)
    assert not await second.try_once()
    await asyncio.sleep(1.2)
    assert await second.try_once()
    # The old leader's next renewal finds the Lease taken.
    assert not await first.try_once()
