"""High availability: one replica reconciles, holding a ``coordination.k8s.io/v1`` Lease.

Why a Lease and not kopf's peering: kopf's peering pauses operators of a *lower* priority while a
higher one runs, but replicas of one Deployment share a priority, and kopf then only warns about
"possibly conflicting operators" and lets all of them run. A Lease, written with the API server's
optimistic concurrency (``resourceVersion``), has exactly one holder; this is what
controller-runtime and client-go do.

The election is the Kubernetes client's ``kubernetes.leaderelection`` (client-go's algorithm), run by
:class:`kube_access.leader_election.LeaseElection`: another replica's Lease counts as expired when
this replica has not seen it change for the lease duration, timed by this replica's own clock, so
clocks that disagree between replicas do not matter. This module maps the operator's settings onto
the election's timing (:func:`election_timing`), logs, keeps the ``tts_operator_leader`` gauge, and
gives the CLI and the handlers what they use: wait until leading, ``leading``, ``on_lost``, release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from kube_access.leader_election import ElectionTiming, LeaseElection
from tts_operator import metrics

log = logging.getLogger(__name__)

# client-go's defaults give up renewing after 10 s of a 15 s lease: two-thirds.
RENEW_DEADLINE_SHARE = 2 / 3


def election_timing(duration: float, renew_every: float) -> ElectionTiming:
    """``TTS_OPERATOR_LEASE_DURATION_SECONDS`` and ``TTS_OPERATOR_LEASE_RENEW_SECONDS`` as the
    library's timing: the lease duration in whole seconds (as the Lease stores it), the renew
    interval as its retry period, and a renew deadline of two-thirds of the lease duration."""
    lease = round(duration)
    try:
        return ElectionTiming(
            lease_duration=lease, renew_deadline=lease * RENEW_DEADLINE_SHARE, retry_period=renew_every
        )
    except ValueError as exc:
        raise ValueError(
            f"TTS_OPERATOR_LEASE_DURATION_SECONDS={duration:g} and TTS_OPERATOR_LEASE_RENEW_SECONDS="
            f"{renew_every:g} make no valid leader election: {exc}"
        ) from None


class LeaderElector:
    """This replica's part in the election for the Lease ``namespace``/``name``."""

    def __init__(
        self,
        api_client: Any,
        *,
        name: str,
        namespace: str,
        identity: str,
        duration: float = 15.0,
        renew_every: float = 5.0,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        """``ValueError`` when ``duration`` and ``renew_every`` make no valid timing."""
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = election_timing(duration, renew_every)
        self._election = LeaseElection(
            api_client,
            name=name,
            namespace=namespace,
            identity=identity,
            timing=self.timing,
            on_leading=self._started,
            on_lost=self._lost,
        )
        if on_lost is not None:
            self._election.when_lost(on_lost)

    @property
    def leading(self) -> bool:
        return self._election.leading

    async def acquire(self) -> None:
        """Wait until this replica leads; from then on the Lease is renewed in the background (the
        election's own thread), whichever event loop runs."""
        if self._election.start():
            log.info(
                "waiting to lead: Lease %s/%s as %s (lease %d s, renew deadline %g s, retry %g s)",
                self.namespace,
                self.name,
                self.identity,
                self.timing.lease_duration,
                self.timing.renew_deadline,
                self.timing.retry_period,
            )
        await self._election.wait_until_leading()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when leadership is lost (before the process stops): in the event loop
        it was registered from, else in the election's thread. The last registered is called first."""
        self._election.when_lost(callback)

    async def release(self) -> None:
        """Stop taking part and give the Lease up at a clean shutdown, so that a standby takes over
        at its next look."""
        if await asyncio.to_thread(self._election.release):
            log.info("released the Lease %s/%s", self.namespace, self.name)
        metrics.IS_LEADER.set(0)

    def _started(self) -> None:
        metrics.IS_LEADER.set(1)
        log.info("leading: Lease %s/%s held by %s", self.namespace, self.name, self.identity)

    def _lost(self, reason: str) -> None:
        metrics.IS_LEADER.set(0)
        log.error("stopped leading: %s", reason)
