"""Local mode's record of truth: TTSWorkflow objects in a JetStream KV bucket.

On one machine there is no API server; this store plays its part. Each record is the resource as
Kubernetes would hold it (camelCase spec and status, metadata with a uid), so the gateway, the
reconcile core and the status presenters read the same shape in both modes. Writes use the
bucket's revision for optimistic concurrency, as ``resourceVersion`` does on a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    InvalidKeyError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from tts_api.nats_names import WORKFLOWS_BUCKET
from tts_api.policy import ValidationPolicy
from tts_api.resource import ObjectMeta, TTSWorkflow, TTSWorkflowSpec, TTSWorkflowStatus
from tts_api.validation import read_workflow

log = logging.getLogger(__name__)

LOCAL_NAMESPACE = "local"
# Read-modify-write attempts before giving up on a record that keeps changing.
MAX_WRITE_RETRIES = 20


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


class LocalWorkflowStore:
    """TTSWorkflow records in NATS KV, with waiting on changes."""

    def __init__(self, kv: KeyValue, policy: ValidationPolicy) -> None:
        self._kv = kv
        self._policy = policy
        self._waiters: dict[str, list[tuple[Predicate, asyncio.Future[TTSWorkflow]]]] = {}
        self._follower: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, js: JetStreamContext, policy: ValidationPolicy) -> LocalWorkflowStore:
        return cls(await js.create_key_value(workflows_bucket()), policy)

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None

    async def ping(self) -> None:
        await self._kv.status()

    # --- reading and writing -------------------------------------------------------------------

    def _decode(self, data: bytes) -> TTSWorkflow:
        return read_workflow(json.loads(data), policy=self._policy)

    async def bodies(self) -> list[dict[str, Any]]:
        """Every record as stored."""
        try:
            names = await self._kv.keys()
        except NoKeysError:
            return []
        found = [await self.read_body(name) for name in names]
        return [entry[0] for entry in found if entry is not None]

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
        try:
            await self._kv.create(name, json.dumps(workflow.to_k8s()).encode())
        except KeyWrongLastSequenceError:
            raise RecordExistsError(f"a workflow named {name!r} already exists") from None
        return workflow

    async def read_body(self, name: str) -> tuple[dict[str, Any], int] | None:
        """The record as stored (the resource's JSON) and its revision; None when there is none, as
        for a name that cannot be a key (no record has it)."""
        try:
            entry = await self._kv.get(name)
        except (KeyNotFoundError, KeyDeletedError, InvalidKeyError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        body: dict[str, Any] = json.loads(entry.value)
        return body, entry.revision

    async def write_body(self, name: str, body: dict[str, Any], *, revision: int) -> int:
        """Replace the record if it is still at ``revision``; return the new revision."""
        try:
            return await self._kv.update(name, json.dumps(body).encode(), last=revision)
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
        return [read_workflow(body, policy=self._policy) for body in await self.bodies()]

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
        await self._kv.purge(name)

    async def watch_all(self) -> KeyValue.KeyWatcher:
        """A watch of every record: first each as it is, then None, then every change."""
        return await self._kv.watchall()

    # --- waiting for a change ------------------------------------------------------------------

    async def wait(self, name: str, predicate: Predicate, wait_seconds: float) -> TTSWorkflow | None:
        """The workflow once ``predicate`` holds for it, or its latest state after ``wait_seconds``."""
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

    def _start_following(self) -> None:
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="local-store-follower")

    async def _follow(self) -> None:
        """One watch over the whole bucket wakes every waiter whose predicate now holds."""
        watcher = await self._kv.watchall(ignore_deletes=False)
        try:
            async for entry in watcher:
                if entry is None or entry.operation in (KV_DEL, KV_PURGE) or entry.value is None:
                    continue
                waiters = self._waiters.get(entry.key)
                if not waiters:
                    continue
                try:
                    workflow = self._decode(entry.value)
                except Exception:
                    log.exception("unreadable workflow record %s", entry.key)
                    continue
                for predicate, future in list(waiters):
                    if not future.done() and predicate(workflow):
                        future.set_result(workflow)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def open_local_store(nats_url: str, policy: ValidationPolicy) -> AsyncIterator[LocalWorkflowStore]:
    """Connect to NATS, open the workflow bucket, and close both on exit."""
    client = await nats.connect(nats_url, name="tts-local-store")
    store = await LocalWorkflowStore.open(client.jetstream(), policy)
    try:
        yield store
    finally:
        await store.close()
        await client.drain()
