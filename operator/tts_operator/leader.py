"""High availability: one replica reconciles, holding a ``coordination.k8s.io/v1`` Lease.

Why a Lease and not kopf's peering: kopf's peering pauses operators of a *lower* priority while a
higher one runs, but replicas of one Deployment share a priority, and kopf then only warns about
"possibly conflicting operators" and lets all of them run. A Lease, written with the API server's
optimistic concurrency (``resourceVersion``), has exactly one holder; this is what
controller-runtime and client-go do.

The decision is a plain function (:func:`lease_step`); :class:`LeaderElector` does the I/O. A leader
that cannot renew within ``renew_deadline`` stops leading (and the process stops) before another
replica may take over the expired Lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from kube_access.client import ConflictError, NotFoundError
from kube_access.cluster import Leases
from tts_operator import metrics

log = logging.getLogger(__name__)


class LeaseStep(StrEnum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # we hold it
    TAKE = "take"  # nobody holds it, or its holder stopped renewing
    WAIT = "wait"  # another replica holds it


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return None


def lease_step(lease: Mapping[str, Any] | None, me: str, now: datetime) -> LeaseStep:
    """What replica ``me`` does about ``lease`` (a Lease body, or None when there is none) at ``now``."""
    if lease is None:
        return LeaseStep.CREATE
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity")
    if holder == me:
        return LeaseStep.RENEW
    renewed = _time(spec.get("renewTime")) or _time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    if not holder or renewed is None or now > renewed + timedelta(seconds=duration):
        return LeaseStep.TAKE
    return LeaseStep.WAIT


def _microtime(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquire, renew and release a Lease through the Kubernetes API."""

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
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = Leases(api_client)
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.duration = duration
        self.renew_every = renew_every
        self.renew_deadline = duration * 2 / 3
        self._on_lost: list[Callable[[], None]] = [on_lost] if on_lost else []
        self._clock = clock
        self._renewed_at: datetime | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.leading = False

    async def try_once(self) -> bool:
        """One round: read the Lease and act on it; True when this replica holds it afterwards."""
        now = self._clock()
        lease = await self._read()
        step = lease_step(lease, self.identity, now)
        if step == LeaseStep.WAIT:
            return False
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration)),
            "renewTime": _microtime(now),
        }
        try:
            if step == LeaseStep.CREATE:
                spec |= {"acquireTime": _microtime(now), "leaseTransitions": 0}
                body = {"metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                await self._leases.create(self.namespace, body)
            else:
                assert lease is not None  # noqa: S101 (lease_step only creates when there is none)
                if step == LeaseStep.TAKE:
                    transitions = (lease.get("spec") or {}).get("leaseTransitions") or 0
                    spec |= {"acquireTime": _microtime(now), "leaseTransitions": transitions + 1}
                patch: dict[str, Any] = {"spec": spec}
                version = (lease.get("metadata") or {}).get("resourceVersion")
                if version:
                    # Optimistic concurrency: the write fails (409) if another replica wrote first.
                    patch["metadata"] = {"resourceVersion": version}
                await self._leases.patch(self.namespace, self.name, patch)
        except (NotFoundError, ConflictError):  # another replica got there first
            return False
        # Confirm: an API server without resourceVersion (an emulator) lets the last writer win.
        confirmed = await self._read()
        held = lease_step(confirmed, self.identity, now) == LeaseStep.RENEW
        if held:
            self._renewed_at = now
        return held

    async def acquire(self, *, renew: bool = True) -> None:
        """Wait until this replica leads; then keep renewing in the background (``renew``), or leave
        that to :meth:`start_renewing` in the event loop that runs the operator."""
        log.info("waiting to lead: Lease %s/%s as %s", self.namespace, self.name, self.identity)
        while True:
            try:
                if await self.try_once():
                    break
            except Exception as exc:
                log.warning("Lease %s/%s unavailable: %s", self.namespace, self.name, exc)
            await asyncio.sleep(self.renew_every)
        self.leading = True
        metrics.IS_LEADER.set(1)
        log.info("leading: Lease %s/%s held by %s", self.namespace, self.name, self.identity)
        if renew:
            self.start_renewing()

    def start_renewing(self) -> None:
        """Renew the Lease from now on, in the running event loop."""
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_forever(), name="tts-operator-lease")

    async def _renew_forever(self) -> None:
        while self.leading:
            await asyncio.sleep(self.renew_every)
            try:
                if await self.try_once():
                    continue
                reason = "another replica holds the Lease"
            except Exception as exc:
                renewed = self._renewed_at or self._clock()
                if self._clock() - renewed < timedelta(seconds=self.renew_deadline):
                    log.warning("renewing the Lease failed, retrying: %s", exc)
                    continue
                reason = f"could not renew the Lease for {self.renew_deadline:.0f} s ({exc})"
            self._lose(reason)

    def _lose(self, reason: str) -> None:
        self.leading = False
        metrics.IS_LEADER.set(0)
        log.error("stopped leading: %s", reason)
        for callback in self._on_lost:
            callback()

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when leadership is lost (before the process stops)."""
        self._on_lost.insert(0, callback)

    async def release(self) -> None:
        """Give the Lease up at a clean shutdown, so that a standby takes over at once."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        if not self.leading:
            return
        self.leading = False
        metrics.IS_LEADER.set(0)
        with contextlib.suppress(Exception):
            patch = {"spec": {"holderIdentity": None, "renewTime": None}}
            await self._leases.patch(self.namespace, self.name, patch)

    async def _read(self) -> dict[str, Any] | None:
        return await self._leases.read(self.namespace, self.name)
