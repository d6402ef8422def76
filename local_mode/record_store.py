"""Local mode's record of truth: TTSWorkflow objects in a JetStream KV bucket.

On one machine there is no API server; this store plays its part. Each record is the resource as
Kubernetes would hold it (camelCase spec and status, metadata with a uid), so the gateway, the
reconcile core and the status presenters read the same shape in both modes. Writes use the
bucket's revision for optimistic concurrency, as ``resourceVersion`` does on a cluster.

Every call first asks whether the store can serve (its NATS connection is up, and the embedded
server reports no fault, such as a full disk); when it cannot, or NATS fails under the call, it
raises :class:`~gateway.backend.BackendUnavailableError` at once, which the gateway answers 503.
Listing reads every record through one watch of the bucket, not one read per key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    APIError,
    InvalidKeyError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    ServerError,
    ServiceUnavailableError,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from gateway.backend import BackendUnavailableError
from gateway.live_tally import LiveTally
from gateway.monitoring import Tally
from nats_support.tasks import cancel_and_wait
from tts_api.nats_names import WORKFLOWS_BUCKET
from tts_api.policy import ValidationPolicy
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec, TTSWorkflowStatus
from tts_api.validation import read_workflow, read_workflow_status

log = logging.getLogger(__name__)

LOCAL_NAMESPACE = "local"
# Read-modify-write attempts before giving up on a record that keeps changing.
MAX_WRITE_RETRIES = 20
# How long a watch that broke waits before it is opened again.
REWATCH_SECONDS = 0.5
# JetStream's error codes for "cannot store this now": insufficient resources, JetStream disabled.
UNAVAILABLE_ERR_CODES = frozenset({10023, 10039, 10047, 10076})

Result = TypeVar("Result")
Health = Callable[[], str | None]
"""None while the store can serve, else what is wrong and what to do (the embedded server's view)."""


def no_fault() -> str | None:
    return None


def unavailable(error: BaseException, url: str) -> BackendUnavailableError | None:
    """The error NATS raised, as the store being unavailable; None for any other error (a missing
    key, a conflict: the callers' business)."""
    if isinstance(error, nats.errors.TimeoutError | TimeoutError):
        return BackendUnavailableError(
            f"the workflow store (NATS at {url}) did not answer in time: nothing was stored; "
            "send the request again in a few seconds, and see the stack's log if it persists"
        )
    if isinstance(
        error,
        nats.errors.ConnectionClosedError
        | nats.errors.ConnectionReconnectingError
        | nats.errors.NoRespondersError
        | nats.errors.OutboundBufferLimitError,
    ):
        return not_connected(url)
    if isinstance(error, ServiceUnavailableError | ServerError) or (
        type(error) is APIError and error.err_code in UNAVAILABLE_ERR_CODES
    ):
        return BackendUnavailableError(
            f"the workflow store (NATS at {url}) cannot store writes now ({error.description}): "
            "nothing was stored; free disk space in the data directory, then send the request again"
        )
    return None


def not_connected(url: str) -> BackendUnavailableError:
    return BackendUnavailableError(
        f"the workflow store (NATS at {url}) is not reachable; local mode restarts it by itself: "
        "send the request again in a few seconds, and see the stack's log if it persists"
    )


class RecordExistsError(Exception):
    """A workflow of that name already exists."""


class RecordConflictError(Exception):
    """The record changed since it was read: read it again and re-apply the change."""


@dataclass(frozen=True)
class StoredWorkflow:
    workflow: TTSWorkflow
    revision: int


def workflows_bucket() -> KeyValueConfig:
    return KeyValueConfig(
        bucket=WORKFLOWS_BUCKET,
        description="Local mode: TTSWorkflow records, spec and status",
        history=1,
        storage=StorageType.FILE,
    )


Predicate = Callable[[TTSWorkflow], bool]


# How long a snapshot of the bucket waits for its next value before it takes what it has.
SNAPSHOT_QUIET_SECONDS = 2.0
# How long a monitoring view waits for the records watch to have read every record once.
CATCH_UP_SECONDS = 10.0


class LocalWorkflowStore:
    """TTSWorkflow records in NATS KV, with waiting on changes."""

    def __init__(
        self,
        kv: KeyValue,
        policy: ValidationPolicy,
        *,
        client: Client | None = None,
        health: Health = no_fault,
    ) -> None:
        self._kv = kv
        self._policy = policy
        self._client = client
        self._health = health
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future[TTSWorkflow]]]] = {}
        self._follower: asyncio.Task[None] | None = None
        self._live = LiveTally()
        self._caught_up = asyncio.Event()  # the follower has read every record once

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        policy: ValidationPolicy,
        *,
        client: Client | None = None,
        health: Health = no_fault,
    ) -> LocalWorkflowStore:
        """The bucket, made if missing; ``client`` (the connection under ``js``) lets each call
        refuse at once while it is disconnected."""
        kv = await js.create_key_value(workflows_bucket())
        return cls(kv, policy, client=client, health=health)

    @property
    def waiting(self) -> int:
        """Requests waiting on a record now (each holds a future until it returns)."""
        return sum(len(waiters) for waiters in self._waiters.values())

    @property
    def _url(self) -> str:
        server = self._client.connected_url if self._client is not None else None
        return server.geturl() if server is not None else "its configured address"

    def check(self) -> None:
        """Raise :class:`BackendUnavailableError` at once when the store cannot serve."""
        problem = self._health()
        if problem is not None:
            raise BackendUnavailableError(problem)
        if self._client is not None and not self._client.is_connected:
            raise not_connected(self._url)

    async def _reach(self, call: Callable[[], Awaitable[Result]]) -> Result:
        """``call()``, if the store can serve; NATS failing under it is the store being unavailable."""
        self.check()
        try:
            return await call()
        except Exception as exc:
            mapped = unavailable(exc, self._url)
            if mapped is None:
                raise
            raise mapped from exc

    def release_waiters(self) -> None:
        """Answer every waiting request now with the workflow's state as it is (the stack stops)."""
        for waiters in self._waiters.values():
            for _, future in waiters:
                if not future.done():
                    future.set_exception(TimeoutError())

    async def close(self) -> None:
        self.release_waiters()
        if self._follower is not None:
            await cancel_and_wait(self._follower)
            self._follower = None

    async def ping(self) -> None:
        await self._reach(self._kv.status)

    async def count(self) -> int:
        """How many values the bucket holds: records, and the markers of deleted ones."""
        status = await self._reach(self._kv.status)
        return int(status.stream_info.state.messages)

    # --- reading and writing -------------------------------------------------------------------

    async def bodies(self) -> list[dict[str, Any]]:
        """Every record as stored (see :meth:`each_body`)."""
        return [body async for body in self.each_body()]

    async def each_body(self) -> AsyncIterator[dict[str, Any]]:
        """Every record as stored, one at a time, from one watch of the bucket (its current values,
        then stop): a few requests whatever the number of records, not one read per key, and one
        record in hand at a time."""
        self.check()
        try:
            if not (await self._kv.status()).stream_info.state.last_seq:
                return  # nothing was ever stored
            watcher = await self._kv.watchall(ignore_deletes=False)
        except Exception as exc:
            mapped = unavailable(exc, self._url)
            if mapped is None:
                raise
            raise mapped from exc
        # The watch first delivers each key once, at its latest revision, deletion markers
        # included; then the changes since. Each value says how many more are pending: none left
        # ends the snapshot (nats-py's own "no more values" may come before the first one), as
        # does a key seen already (a change made since the snapshot began).
        seen: set[str] = set()
        try:
            while True:
                try:
                    entry = await watcher.updates(timeout=SNAPSHOT_QUIET_SECONDS)  # type: ignore[no-untyped-call]
                except nats.errors.TimeoutError:
                    return  # nothing more is coming (the last marker expired, say)
                except Exception as exc:
                    mapped = unavailable(exc, self._url)
                    if mapped is None:
                        raise
                    raise mapped from exc
                if entry is None:
                    continue
                if entry.key in seen:
                    return
                seen.add(entry.key)
                if entry.value and entry.operation not in (KV_DEL, KV_PURGE):
                    yield json.loads(entry.value)
                if entry.delta == 0:
                    return
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def workflows(self) -> AsyncIterator[TTSWorkflow]:
        """Every workflow, one at a time (see :meth:`each_body`)."""
        async for body in self.each_body():
            yield read_workflow(body, policy=self._policy)

    async def create(self, name: str, spec: TTSWorkflowSpec) -> TTSWorkflow:
        """Store a new workflow, as the API server would on ``POST``: uid, generation, timestamp."""
        workflow = TTSWorkflow(
            metadata=ObjectMeta(
                name=name,
                namespace=LOCAL_NAMESPACE,
                uid=str(uuid.uuid4()),
                generation=1,
                creationTimestamp=datetime.now(UTC),
            ),
            spec=spec,
        )
        body = json.dumps(workflow.to_k8s()).encode()
        try:
            await self._reach(lambda: self._kv.create(name, body))
        except KeyWrongLastSequenceError:
            raise RecordExistsError(f"a workflow named {name!r} already exists") from None
        return workflow

    async def read_body(self, name: str) -> tuple[dict[str, Any], int] | None:
        """The record as stored (the resource's JSON) and its revision; None when there is none, as
        for a name that cannot be a key (no record has it)."""
        try:
            entry = await self._reach(lambda: self._kv.get(name))
        except (KeyNotFoundError, KeyDeletedError, InvalidKeyError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        body: dict[str, Any] = json.loads(entry.value)
        return body, entry.revision

    async def write_body(self, name: str, body: dict[str, Any], *, revision: int) -> int:
        """Replace the record if it is still at ``revision``; return the new revision."""
        data = json.dumps(body).encode()
        try:
            return await self._reach(lambda: self._kv.update(name, data, last=revision))
        except KeyWrongLastSequenceError:
            raise RecordConflictError(f"workflow {name!r} changed since revision {revision}") from None

    async def read(self, name: str) -> StoredWorkflow | None:
        found = await self.read_body(name)
        if found is None:
            return None
        body, revision = found
        return StoredWorkflow(read_workflow(body, policy=self._policy), revision)

    async def get(self, name: str) -> TTSWorkflow | None:
        stored = await self.read(name)
        return stored.workflow if stored else None

    async def list(self) -> list[TTSWorkflow]:
        return [workflow async for workflow in self.workflows()]

    async def replace_status(self, name: str, status: TTSWorkflowStatus, *, revision: int) -> int:
        """Write ``status`` if the record is still at ``revision``; return the new revision."""
        found = await self.read_body(name)
        if found is None:
            raise RecordConflictError(f"workflow {name!r} no longer exists")
        body, _ = found
        body["status"] = status.to_k8s()
        return await self.write_body(name, body, revision=revision)

    async def delete(self, name: str) -> bool:
        """Ask for deletion, as ``kubectl delete`` does on an object with a finalizer: the record gets
        ``metadata.deletionTimestamp``; local mode's operator cancels its job, then purges it."""
        for _ in range(MAX_WRITE_RETRIES):
            found = await self.read_body(name)
            if found is None:
                return False
            body, revision = found
            metadata = body.setdefault("metadata", {})
            if metadata.get("deletionTimestamp"):
                return True
            metadata["deletionTimestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            try:
                await self.write_body(name, body, revision=revision)
                return True
            except RecordConflictError:
                continue
        raise RecordConflictError(f"workflow {name!r} kept changing; try deleting it again")

    async def purge(self, name: str) -> None:
        """Remove the record for good (after its deletion was handled)."""
        await self._reach(lambda: self._kv.purge(name))

    async def watch_all(self) -> KeyValue.KeyWatcher:
        """A watch of every record: first each as it is, then None, then every change."""
        return await self._reach(self._kv.watchall)

    # --- waiting for a change ------------------------------------------------------------------

    async def wait(self, name: str, predicate: Predicate, wait_seconds: float) -> TTSWorkflow | None:
        """The workflow once ``predicate`` holds for it, or its latest state after ``wait_seconds``."""
        self.check()
        self._start_following()
        future: asyncio.Future[TTSWorkflow] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._waiters.setdefault(name, []).append(waiter)
        try:
            current = await self.get(name)  # after registering, so no change slips between
            if current is None or predicate(current):
                return current
            return await asyncio.wait_for(future, wait_seconds)
        except TimeoutError:
            return await self.get(name)
        finally:
            waiters = self._waiters.get(name, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(name, None)

    async def tally(self) -> Tally:
        """The monitoring tally of every record, kept by the records watch: no record is read."""
        self.check()
        self._start_following()
        try:
            await asyncio.wait_for(self._caught_up.wait(), CATCH_UP_SECONDS)
        except TimeoutError:
            raise BackendUnavailableError(
                f"the workflow store (NATS at {self._url}) is still being read after a restart: "
                "send the request again in a few seconds"
            ) from None
        return self._live.tally()

    def _start_following(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="local-store-follower")

    async def _follow(self) -> None:
        """One watch over the whole bucket keeps the monitoring tally and wakes every waiter whose
        predicate now holds; a watch that breaks (NATS restarted) is opened again, and its first
        values (every record as it is) rebuild the tally and wake whoever waits."""
        while True:
            try:
                await self._follow_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("the records watch broke (%s); opening it again", exc)
            await asyncio.sleep(REWATCH_SECONDS)

    async def _follow_once(self) -> None:
        self._caught_up.clear()
        self._live.clear()
        if not (await self._kv.status()).stream_info.state.messages:
            self._caught_up.set()  # no record, and no value coming
        watcher = await self._kv.watchall(ignore_deletes=False)
        try:
            async for entry in watcher:
                if entry is None:
                    continue
                self._take(entry)
                if entry.delta == 0:
                    self._caught_up.set()  # the last of the values pending when it came
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    def _take(self, entry: KeyValue.Entry) -> None:
        """One value from the watch: into the tally, then to the waiters on its record."""
        if entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
            self._live.forget(entry.key)
            return
        try:
            body = json.loads(entry.value)
            self._live.note(entry.key, read_workflow_status(body))
            waiters = self._waiters.get(entry.key)
            if not waiters:
                return
            workflow = read_workflow(body, policy=self._policy)
        except Exception:
            log.exception("unreadable workflow record %s", entry.key)
            return
        for predicate, future in list(waiters):
            if not future.done() and predicate(workflow):
                future.set_result(workflow)


async def connect(nats_url: str, name: str) -> Client:
    """A client that reconnects for as long as it lives (local mode restarts its nats-server) and
    says so in one line each time, not a traceback per attempt."""

    async def on_error(error: Exception) -> None:
        log.debug("%s: NATS error: %r", name, error)

    client = Client()

    async def on_disconnected() -> None:
        if client.is_closed or client.is_draining:
            return  # closed on purpose: there is nothing to reconnect to
        log.warning("%s: disconnected from NATS at %s; reconnecting", name, nats_url)

    async def on_reconnected() -> None:
        log.info("%s: reconnected to NATS at %s", name, nats_url)

    await client.connect(
        nats_url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,  # type: ignore[arg-type]  # seconds: nats-py takes a float
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    return client


async def close_client(client: Client, drain_seconds: float = 5.0) -> None:
    """Drain the client, or close it when NATS is gone (a drain would wait for it)."""
    try:
        if client.is_connected:
            await asyncio.wait_for(client.drain(), drain_seconds)
            return
    except Exception as exc:
        log.debug("draining the NATS client failed: %r", exc)
    with contextlib.suppress(Exception):
        await client.close()


@contextlib.asynccontextmanager
async def open_local_store(
    nats_url: str, policy: ValidationPolicy, *, health: Health = no_fault
) -> AsyncIterator[LocalWorkflowStore]:
    """Connect to NATS, open the workflow bucket, and close both on exit."""
    client = await connect(nats_url, "tts-local-store")
    store = await LocalWorkflowStore.open(client.jetstream(), policy, client=client, health=health)
    try:
        yield store
    finally:
        await store.close()
        await close_client(client)
