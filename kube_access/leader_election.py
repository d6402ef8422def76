"""One replica's part in a Lease election, run by the Kubernetes client's ``kubernetes.leaderelection``.

The library follows client-go: a candidate counts a Lease held by another as expired when it has not
seen the Lease *change* for ``lease_duration``, timed by its own clock from the moment it saw it;
the ``renewTime`` written in the Lease is never compared with anyone's clock. Replicas whose clocks
disagree therefore neither steal a Lease that is being renewed nor wait for ever on an expired one.
A Lease without holder (released) is taken at once.

The library's loop is used as it is (:class:`LeaderElection`, in a thread of its own); around it, this
module covers what it lacks:

* its lock builds ``CoordinationV1Api()`` on the global default configuration and writes with
  ``update`` (PUT); :class:`_LeaseLock` uses the API client it is given and writes JSON merge patches
  with the ``resourceVersion`` read (the chart grants ``get`` and ``patch`` on the Lease), every call
  bounded by a timeout, and it turns a refused or unanswered call into a failed attempt (the
  library's lock lets a network error escape, which ends the library's thread);
* its leader gives up only after a failed round that started a retry period after its last renewal
  and then sleeps another retry period: this module stops leading on its own clock once it has not
  renewed for ``renew_deadline`` (``monotonic``, from the start of its last successful write), and at
  once when it sees that another replica holds the Lease;
* it has no way to stop: after :meth:`LeaseElection.stop` every call of the lock raises, which ends
  the library's loop, and :meth:`LeaseElection.release` then clears ``holderIdentity``;
* its callbacks run in its threads: :meth:`LeaseElection.wait_until_leading` and the callbacks given
  to :meth:`LeaseElection.when_lost` from a coroutine come back in that coroutine's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes import client
from kubernetes.client import ApiException
from kubernetes.leaderelection import electionconfig
from kubernetes.leaderelection.leaderelection import LeaderElection
from kubernetes.leaderelection.leaderelectionrecord import LeaderElectionRecord
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

from kube_access.client import ConflictError, NotFoundError
from kube_access.cluster import Leases

log = logging.getLogger(__name__)

# The library logs every attempt at INFO ("yet to finish lease_duration, ..."); this module logs the
# changes that matter (leading, lost, the holder seen, the API server unreachable) once each.
LIBRARY_LOGGER = "leaderelection"
# The library's rule (electionconfig.Config's jitter_factor): the renew deadline is longer than
# this many retry periods, so that a leader retries a failed renewal before it gives up.
JITTER_FACTOR = 1.2
# How often a leader checks its renewal deadline on its own clock.
WATCH_SECONDS = 0.1


@dataclass(frozen=True)
class ElectionTiming:
    """The library's three durations, in seconds (its rules checked here, as ``ValueError``: the
    library itself calls ``sys.exit`` on a bad one)."""

    lease_duration: int  # a Lease seen unchanged for this long may be taken over (the Lease stores it)
    renew_deadline: float  # a leader that has not renewed for this long stops leading
    retry_period: float  # how often the leader renews and a standby looks; also each call's timeout

    def __post_init__(self) -> None:
        if self.retry_period < 1:
            raise ValueError(f"the retry period ({self.retry_period:g} s) must be at least 1 s")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError(
                f"the renew deadline ({self.renew_deadline:g} s) must be more than {JITTER_FACTOR} × "
                f"the retry period ({self.retry_period:g} s)"
            )
        if self.lease_duration <= self.renew_deadline + WATCH_SECONDS:
            raise ValueError(
                f"the lease duration ({self.lease_duration} s) must be more than the renew deadline "
                f"({self.renew_deadline:g} s)"
            )


class ElectionStoppedError(Exception):
    """The election stopped (released, stopped or lost) before this replica led."""


class _Stopped(Exception):  # noqa: N818 (not an error: how the library's loop is ended)
    """Raised by the lock once the election is stopped: it unwinds the library's loop."""


class _Refused:
    """What the lock's ``get`` answers for a failed read: the library reads ``body`` (a 404 there
    means "no Lease yet: create it") and ``reason``."""

    def __init__(self, reason: str, *, not_found: bool = False) -> None:
        self.reason = reason
        self.body = '{"code": 404}' if not_found else None


def _microtime(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reason(exc: Exception) -> str:
    """A short reason for a failed call (an ``ApiException``'s text carries headers and body)."""
    if isinstance(exc, ApiException):
        return f"{exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


class LeaseElection:
    """This replica (``identity``) in the election for the Lease ``namespace``/``name``.

    ``on_leading`` and ``on_lost`` (the reason as text) are called in the election's threads, once
    each at most: when this replica starts leading, and when it stops leading without being told to
    (it could not renew, or another replica took the Lease)."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: ElectionTiming,
        on_leading: Callable[[], None] = lambda: None,
        on_lost: Callable[[str], None] = lambda _reason: None,
    ) -> None:
        logging.getLogger(LIBRARY_LOGGER).setLevel(logging.WARNING)
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self.thread_name = f"lease-election:{identity}"  # the thread that runs the library's loop
        self._leases = Leases(api_client, timeout=timing.retry_period)
        self._on_leading = on_leading
        self._on_lost = on_lost
        self._lock = _LeaseLock(self)
        self._io = threading.Lock()  # one call to the API server at a time; stop() waits for it
        self._state = threading.Lock()
        self._stopped = threading.Event()
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leading = False
        self._renewed_at = 0.0  # time.monotonic() at the start of the last successful write
        self._holder_seen: str | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._lost_callbacks: list[tuple[asyncio.AbstractEventLoop | None, Callable[[], None]]] = []

    # --- what callers use --------------------------------------------------------------------------

    @property
    def leading(self) -> bool:
        return self._leading

    def start(self) -> bool:
        """Take part from now on (the library's loop and a deadline watch, in threads); False when
        started already."""
        with self._state:
            if self._threads:
                return False
            self._threads = [
                threading.Thread(target=self._run, name=self.thread_name, daemon=True),
                threading.Thread(target=self._watch, name=f"lease-deadline:{self.identity}", daemon=True),
            ]
        for thread in self._threads:
            thread.start()
        return True

    async def wait_until_leading(self) -> None:
        """Return once this replica leads (at once if it does); ``ElectionStoppedError`` if the
        election stops first. Cancelling the wait leaves the election running."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._state:
            if self._leading:
                return
            if self._stopped.is_set() or self._finished.is_set():
                raise ElectionStoppedError(f"the election for {self._lease} has stopped")
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self._state, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))

    def when_lost(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if this replica stops leading without being told to. Registered from a
        coroutine, it is called in that event loop; else in the election's thread. The callbacks
        registered last are called first."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        with self._state:
            self._lost_callbacks.insert(0, (loop, callback))

    def stop(self) -> None:
        """Take no further part; the Lease is left as it is (if held, it expires). Waits for a call
        to the API server in flight (at most the retry period)."""
        with self._io:
            self._stopped.set()
        with self._state:
            self._leading = False
            waiters, self._waiters = self._waiters, []
        self._fail(waiters)

    def release(self) -> bool:
        """Stop, then give the Lease up if the API server says this replica holds it (clear its
        holder, if it is still at the version read): a standby takes it at its next look. True when
        it was released."""
        self.stop()
        try:
            lease = self._leases.read(self.namespace, self.name)
            if lease is None or lease.spec is None or lease.spec.holder_identity != self.identity:
                return False
            version = lease.metadata.resource_version if lease.metadata else None
            self._leases.patch(self.namespace, self.name, {"holderIdentity": None}, resource_version=version)
        except ConflictError:
            return False  # another replica wrote meanwhile: it is no longer ours to give
        except Exception as exc:
            log.warning("could not release the Lease %s: %s", self._lease, _reason(exc))
            return False
        return True

    def join(self, timeout: float) -> bool:
        """Wait until the election's threads have ended (after a stop or a loss); True if they have."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    # --- the threads -------------------------------------------------------------------------------

    @property
    def _lease(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _run(self) -> None:
        config = electionconfig.Config(  # type: ignore[no-untyped-call]
            self._lock,
            lease_duration=self.timing.lease_duration,
            renew_deadline=self.timing.renew_deadline,
            retry_period=self.timing.retry_period,
            onstarted_leading=self._started,
            onstopped_leading=lambda: self._lose(
                f"could not renew the Lease {self._lease} within {self.timing.renew_deadline:g} s"
            ),
        )
        try:
            LeaderElection(config).run()  # type: ignore[no-untyped-call]
        except _Stopped:
            pass
        except Exception as exc:
            log.exception("the election for the Lease %s failed", self._lease)
            self._lose(f"the election failed: {_reason(exc)}")
        finally:
            self._finished.set()
            with self._state:
                waiters, self._waiters = self._waiters, []
            self._fail(waiters)

    def _watch(self) -> None:
        """Stop leading once the last renewal is older than the renew deadline, on this clock."""
        while not self._finished.wait(WATCH_SECONDS):
            with self._state:
                late = self._leading and time.monotonic() - self._renewed_at > self.timing.renew_deadline
            if late:
                self._lose(f"could not renew the Lease {self._lease} for {self.timing.renew_deadline:g} s")

    def _started(self) -> None:
        """The library's ``onstarted_leading``, in a thread of its own."""
        with self._state:
            if self._stopped.is_set():
                return
            self._leading = True
        self._on_leading()
        with self._state:
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                loop.call_soon_threadsafe(_resolve, future, None)

    def _lose(self, reason: str) -> None:
        with self._state:
            if not self._leading:
                return
            self._leading = False
            self._stopped.set()  # the library's loop ends at its next call
            callbacks = list(self._lost_callbacks)
        self._on_lost(reason)
        for loop, callback in callbacks:
            if loop is None:
                callback()
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(callback)

    def _fail(self, waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
        error = ElectionStoppedError(f"the election for {self._lease} stopped before this replica led")
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future, error)

    # --- what the lock reports ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _call(self) -> Iterator[None]:
        """One call to the API server, unless the election is stopped (then the library's loop ends)."""
        with self._io:
            if self._stopped.is_set():
                raise _Stopped
            yield

    def _renewed(self, started_at: float) -> None:
        with self._state:
            self._renewed_at = started_at

    def _saw(self, holder: str | None) -> None:
        if holder and holder != self.identity:
            if self._leading:
                self._lose(f"{holder} holds the Lease {self._lease} now")
            elif holder != self._holder_seen:
                log.info("the Lease %s is held by %s", self._lease, holder)
        self._holder_seen = holder


def _resolve(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class _LeaseLock(LeaseLock):
    """The library's ``LeaseLock``, through this project's client and the chart's verbs (see the
    module's doc); the library calls ``get``, then ``create`` or ``update``."""

    def __init__(self, election: LeaseElection) -> None:
        # Not the library's __init__: it builds a client on the global default configuration.
        self.name = election.name
        self.namespace = election.namespace
        self.identity = election.identity
        self.lease_reference: client.V1Lease | None = None
        self._election = election
        self._failing = False

    def get(self, name: str, namespace: str) -> tuple[bool, Any]:
        with self._election._call():
            try:
                lease = self._election._leases.read(namespace, name)
            except Exception as exc:
                self._failed(exc)
                return False, _Refused(_reason(exc))
        self._answered()
        if lease is None:
            return False, _Refused("not found", not_found=True)
        self.lease_reference = lease
        record: LeaderElectionRecord = self.get_lock_object(lease)  # type: ignore[no-untyped-call]
        self._election._saw(record.holder_identity)
        return True, record

    def create(self, name: str, namespace: str, election_record: LeaderElectionRecord) -> bool:
        # A conflict: another replica made it first.
        return self._write(
            lambda: self._election._leases.create(namespace, name, self._spec(election_record, 0)),
            lost=(ConflictError,),
        )

    def update(self, name: str, namespace: str, updated_record: LeaderElectionRecord) -> bool:
        current = self.lease_reference
        if current is None:
            return False
        spec = current.spec
        transitions = (spec.lease_transitions or 0) if spec else 0
        if spec is None or spec.holder_identity != updated_record.holder_identity:
            transitions += 1  # taken over (client-go counts the same way)
        version = current.metadata.resource_version if current.metadata else None
        # A conflict or a 404: another replica wrote first, or the Lease went: read it again.
        return self._write(
            lambda: self._election._leases.patch(
                namespace, name, self._spec(updated_record, transitions), resource_version=version
            ),
            lost=(ConflictError, NotFoundError),
        )

    def _write(self, write: Callable[[], client.V1Lease], *, lost: tuple[type[Exception], ...]) -> bool:
        """One write of the Lease: True and the renewal noted when it lands; False when another
        replica won the race (``lost``) or the API server failed (counted as a failed try)."""
        with self._election._call():
            started = time.monotonic()
            try:
                lease = write()
            except lost:
                return False
            except Exception as exc:
                self._failed(exc)
                return False
        self._answered()
        self.lease_reference = lease
        self._election._renewed(started)
        return True

    def _spec(self, record: LeaderElectionRecord, transitions: int) -> dict[str, Any]:
        # The record's times are the library's local wall clock as text; time_str_to_iso makes them
        # UTC instants (they are for people reading the Lease: no candidate judges by them).
        acquired: datetime = self.time_str_to_iso(record.acquire_time)  # type: ignore[no-untyped-call]
        renewed: datetime = self.time_str_to_iso(record.renew_time)  # type: ignore[no-untyped-call]
        return {
            "holderIdentity": record.holder_identity,
            "leaseDurationSeconds": int(record.lease_duration),
            "acquireTime": _microtime(acquired),
            "renewTime": _microtime(renewed),
            "leaseTransitions": transitions,
        }

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            lease = self._election._lease
            log.warning("the Lease %s: a call to the API server failed: %s", lease, _reason(exc))
        self._failing = True

    def _answered(self) -> None:
        if self._failing:
            log.info("the Lease %s: the API server answers again", self._election._lease)
        self._failing = False
