"""The worker registry: one entry per inference worker in the ``tts_workers`` KV bucket.

Workers write their entry every heartbeat; the bucket's TTL removes the entry of a worker that died,
so the gateway's GPU-lock view shows each slot as it really is. Wire format: JSON, snake_case.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from tts_api.constants import TaskName
from tts_api.messages import MESSAGE_VERSION, WorkflowRef, utcnow

# A worker's registry entry expires this long after its last refresh (workers refresh every few s).
WORKER_ENTRY_TTL_SECONDS = 15.0


class WorkerState(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"


class ModelState(StrEnum):
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


class CacheUse(BaseModel):
    """One bounded cache of a worker: how full it is, and how well it serves."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    entries: int = Field(ge=0)
    capacity: int = Field(ge=0)
    hits: int = Field(default=0, ge=0)
    misses: int = Field(default=0, ge=0)


class WorkerEntry(BaseModel):
    """What one worker says about itself: its slot, its job in hand, its GPU and its model."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = MESSAGE_VERSION
    worker_id: str = Field(min_length=1, description="<pod>/<slot>, e.g. indextts-worker-0/gpu0.")
    pod: str = Field(min_length=1)
    slot: str = Field(min_length=1, description="gpu<N>, or cpu<N> on a CPU engine.")
    state: WorkerState
    job_id: str | None = None
    workflow: WorkflowRef | None = None
    task: TaskName | None = None
    job_started_at: datetime | None = None
    engine: str = Field(description="indextts2, indextts25, espeak or synthetic.")
    model: str = Field(default="", description="The model it serves, as requests name it (indextts-2, ...).")
    model_version: str = Field(default="", description="The engine's version.")
    device: str = Field(default="", description="Where the engine runs: cuda:0, cpu.")
    languages: list[str] = Field(default_factory=list, description="Language codes the model speaks.")
    model_state: ModelState
    gpu: str | None = Field(default=None, description="GPU name, None on CPU.")
    gpu_memory_used: int | None = Field(default=None, ge=0, description="Bytes in use on the GPU.")
    gpu_memory_total: int | None = Field(default=None, ge=0, description="Bytes on the GPU.")
    gpu_memory_allocated: int | None = Field(
        default=None, ge=0, description="Bytes torch has allocated on the GPU for tensors (CUDA engines)."
    )
    gpu_memory_reserved: int | None = Field(
        default=None, ge=0, description="Bytes torch's caching allocator holds on the GPU (CUDA engines)."
    )
    resident_memory: int | None = Field(
        default=None, ge=0, description="The worker process's resident bytes."
    )
    caches: dict[str, CacheUse] = Field(
        default_factory=dict, description="The engine's bounded caches (speaker, emotion conditioning)."
    )
    jobs_succeeded: int = Field(default=0, ge=0)
    jobs_failed: int = Field(default=0, ge=0)
    started_at: datetime = Field(default_factory=utcnow)
    last_heartbeat: datetime = Field(default_factory=utcnow)
    heartbeat_seconds: float = Field(gt=0, description="How often the entry is refreshed.")


_UNSAFE = re.compile(r"[^-_=A-Za-z0-9]")


def registry_key(worker_id: str) -> str:
    """The KV key of a worker: ``/`` and any other character a key may not hold become ``_``."""
    return _UNSAFE.sub("_", worker_id)


def encode_entry(entry: WorkerEntry) -> bytes:
    return entry.model_dump_json(exclude_none=True).encode()


def decode_entry(data: bytes | str) -> WorkerEntry:
    return WorkerEntry.model_validate_json(data)
