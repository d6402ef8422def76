"""The workflow API's monitoring answers: plain functions over workflow records and registry entries.

``heartbeat/all`` lists every active task with its worker and last heartbeat (from status);
``gpu-lock/health`` shows one lock per worker slot as it really is (from the worker registry, whose
entries lapse when a worker dies) and, in a cluster, the namespace's GPU quota; ``statistics``
counts finished stages and busy slots.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from gateway.presenters import task_id
from gateway.served_models import served_models
from tts_api.constants import Phase, StageState
from tts_api.errors import ErrorCode
from tts_api.registry import WORKER_ENTRY_TTL_SECONDS, ModelState, WorkerEntry, WorkerState
from tts_api.resource import TTSWorkflow
from tts_api.speech_models import model_of

ACTIVE_STATES = frozenset({StageState.QUEUED, StageState.RUNNING})


class TaskHeartbeat(BaseModel):
    task_id: str | None
    task_name: str
    workflow_id: str
    worker_id: str | None
    pod: str | None
    last_heartbeat: datetime | None
    status: str


class HeartbeatAllResponse(BaseModel):
    total_tasks: int
    active_tasks: int
    tasks: list[TaskHeartbeat]


class SystemStatistics(BaseModel):
    total_tasks: int
    successful_tasks: int
    failed_tasks: int
    success_rate: float | None
    avg_processing_time: float | None


COUNTERS = (
    "dispatched",
    "succeeded",
    "failed_stages",
    "refused",
    "timeouts",
    "processing_seconds",
    "processed",
)


@dataclass(slots=True)
class Tally:
    """What the monitoring answers need from the workflow records, gathered in one pass: a few
    counters and the active tasks, however many records there are. Every dispatched stage counts as
    a task."""

    dispatched: int = 0
    active: list[TaskHeartbeat] = field(default_factory=list)
    succeeded: int = 0
    failed_stages: int = 0
    refused: int = 0
    timeouts: int = 0
    processing_seconds: float = 0.0
    processed: int = 0

    @classmethod
    def of(cls, workflows: Iterable[TTSWorkflow]) -> Tally:
        tally = cls()
        for workflow in workflows:
            tally.add(workflow)
        return tally

    def add(self, workflow: TTSWorkflow) -> None:
        status = workflow.status
        heartbeat = status.heartbeat
        stage_failed = False
        for stage in status.stages:
            if stage.attempt >= 1:
                self.dispatched += 1
            if stage.state in ACTIVE_STATES and stage.attempt >= 1:
                self.active.append(
                    TaskHeartbeat(
                        task_id=task_id(workflow, stage),
                        task_name=stage.name.value,
                        workflow_id=workflow.metadata.name,
                        worker_id=heartbeat.worker if heartbeat else None,
                        pod=heartbeat.pod if heartbeat else None,
                        last_heartbeat=heartbeat.last_heartbeat if heartbeat else None,
                        status=stage.state.value.lower(),
                    )
                )
            elif stage.state is StageState.SUCCEEDED:
                self.succeeded += 1
                processing = (stage.output or {}).get("processing_time")
                if isinstance(processing, int | float):
                    self.processing_seconds += float(processing)
                    self.processed += 1
            elif stage.state is StageState.FAILED:
                self.failed_stages += 1
                stage_failed = True
            finished = stage.state in (StageState.SUCCEEDED, StageState.FAILED)
            if finished and stage.error is not None and stage.error.code is ErrorCode.TASK_TIMEOUT:
                self.timeouts += 1
        if status.phase is Phase.FAILED and not stage_failed:
            self.refused += 1  # refused before any task ran (an invalid spec): one failed task all the same

    def move(self, other: Tally, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) ``other``'s counters; the active tasks stay."""
        for name in COUNTERS:
            setattr(self, name, getattr(self, name) + sign * getattr(other, name))

    @property
    def finished_stages(self) -> int:
        return self.succeeded + self.failed_stages


def heartbeat_all(tally: Tally) -> HeartbeatAllResponse:
    """Every dispatched stage counts as a task; the active ones are listed with their heartbeat."""
    return HeartbeatAllResponse(
        total_tasks=tally.dispatched, active_tasks=len(tally.active), tasks=tally.active
    )


def system_statistics(tally: Tally) -> SystemStatistics:
    """Totals over finished stages (a workflow failed before any ran counts as one failed task);
    success rate and mean processing time where there are any."""
    failed = tally.failed_stages + tally.refused
    finished = tally.succeeded + failed
    return SystemStatistics(
        total_tasks=finished,
        successful_tasks=tally.succeeded,
        failed_tasks=failed,
        success_rate=round(tally.succeeded / finished, 4) if finished else None,
        avg_processing_time=round(tally.processing_seconds / tally.processed, 3) if tally.processed else None,
    )


# --- the GPU lock and worker statistics, from the worker registry ----------------------------------

# The workflow API's health thresholds: below this success rate, or above this timeout rate, the lock
# system reports itself degraded.
MIN_SUCCESS_RATE = 0.8
MAX_TIMEOUT_RATE = 0.2


class GpuQuota(BaseModel):
    """The namespace ResourceQuota on ``requests.nvidia.com/gpu``: the GPU lock's capacity."""

    name: str
    hard: int
    used: int


class GpuLock(BaseModel):
    """One GPU slot: the workflow API's lock fields, plus who holds it."""

    lock_key: str
    locked: bool
    last_acquired: datetime | None
    expires_at: datetime | None = Field(
        description="When the holder's registry entry lapses without a heartbeat."
    )
    worker_id: str
    pod: str
    gpu: str | None
    job_id: str | None
    workflow_id: str | None
    model_state: str
    model: str = Field(description="The model the slot serves (indextts-2, indextts-2.5, espeak, ...).")


class ModelCapacity(BaseModel):
    """How many slots serve one model, and how many of them could take a job now."""

    workers: int = Field(description="Registered slots serving the model (one job each at a time).")
    ready: int = Field(description="Of those, slots with the model loaded.")
    busy: int = Field(description="Of those, slots holding a job.")
    idle: int = Field(description="Of those, slots ready and holding no job.")
    queued: int = Field(
        default=0,
        description="Jobs waiting for a slot of this model (none taken yet): with no worker, the "
        "work a Deployment scaled to zero is woken for.",
    )


def model_capacity(
    workers: list[WorkerEntry], queued: Mapping[str, int] | None = None
) -> dict[str, ModelCapacity]:
    """Per model: the slots that serve it and the jobs waiting for one; a model with jobs waiting
    and no slot is listed too (scaled to zero, or none runs)."""
    served = served_models(workers)
    waiting = {model: count for model, count in (queued or {}).items() if count}
    capacity: dict[str, ModelCapacity] = {}
    for model in sorted(served.keys() | waiting.keys()):
        slots = served.get(model)
        capacity[model] = ModelCapacity(
            workers=slots.workers if slots else 0,
            ready=slots.ready_workers if slots else 0,
            busy=slots.busy_workers if slots else 0,
            idle=slots.idle_workers if slots else 0,
            queued=waiting.get(model, 0),
        )
    return capacity


class HealthThresholds(BaseModel):
    min_success_rate: float = MIN_SUCCESS_RATE
    max_timeout_rate: float = MAX_TIMEOUT_RATE


class GpuLockHealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    total_locks: int
    active_locks: int
    locks: list[GpuLock]
    health_thresholds: HealthThresholds
    quota: GpuQuota | None = Field(default=None, description="The namespace's GPU quota, in a cluster.")
    reasons: list[str] = Field(default_factory=list, description="Why the status is not healthy.")
    models: dict[str, ModelCapacity] = Field(default_factory=dict, description="The slots by model.")


class GpuStatistics(BaseModel):
    utilization: float | None = Field(description="Busy slots over all slots.")
    memory_used: str | None
    memory_total: str | None


class WorkerStatistics(BaseModel):
    total: int
    active: int
    idle: int


class StatisticsResponse(BaseModel):
    system: SystemStatistics
    gpu: GpuStatistics
    workers: WorkerStatistics
    models: dict[str, ModelCapacity] = Field(default_factory=dict, description="The slots by model.")


def _gigabytes(size: int | None) -> str | None:
    return None if size is None else f"{size / 1e9:.1f}GB"


def timeout_rate(tally: Tally) -> float | None:
    """The share of finished stages that failed with TASK_TIMEOUT."""
    return tally.timeouts / tally.finished_stages if tally.finished_stages else None


def gpu_lock_health(
    workers: list[WorkerEntry],
    tally: Tally,
    *,
    quota: GpuQuota | None = None,
    queued: Mapping[str, int] | None = None,
) -> GpuLockHealthResponse:
    """One lock per worker slot, busy while it holds a job; its health from the slots and the outcomes."""
    locks = [
        GpuLock(
            lock_key=f"gpu_lock:{entry.worker_id}",
            locked=entry.state is WorkerState.BUSY,
            last_acquired=entry.job_started_at,
            expires_at=entry.last_heartbeat + timedelta(seconds=WORKER_ENTRY_TTL_SECONDS),
            worker_id=entry.worker_id,
            pod=entry.pod,
            gpu=entry.gpu,
            job_id=entry.job_id,
            workflow_id=entry.workflow.name if entry.workflow else None,
            model_state=entry.model_state.value,
            model=entry.model or model_of(entry.engine),
        )
        for entry in sorted(workers, key=lambda e: e.worker_id)
    ]
    reasons: list[str] = []
    if not locks:
        reasons.append("no inference worker is registered")
    broken = [entry.worker_id for entry in workers if entry.model_state is ModelState.ERROR]
    if broken:
        reasons.append(f"model failed to load on {', '.join(sorted(broken))}")
    rate = system_statistics(tally).success_rate
    if rate is not None and rate < MIN_SUCCESS_RATE:
        reasons.append(f"success rate {rate:.2f} is below {MIN_SUCCESS_RATE}")
    timeouts = timeout_rate(tally)
    if timeouts is not None and timeouts > MAX_TIMEOUT_RATE:
        reasons.append(f"timeout rate {timeouts:.2f} is above {MAX_TIMEOUT_RATE}")
    status: Literal["healthy", "degraded", "unhealthy"] = (
        "unhealthy" if not locks or len(broken) == len(locks) else "degraded" if reasons else "healthy"
    )
    return GpuLockHealthResponse(
        status=status,
        total_locks=len(locks),
        active_locks=sum(lock.locked for lock in locks),
        locks=locks,
        health_thresholds=HealthThresholds(),
        quota=quota,
        reasons=reasons,
        models=model_capacity(workers, queued),
    )


def statistics(
    workers: list[WorkerEntry], tally: Tally, queued: Mapping[str, int] | None = None
) -> StatisticsResponse:
    busy = sum(entry.state is WorkerState.BUSY for entry in workers)
    on_gpu = [entry for entry in workers if entry.gpu_memory_total is not None]
    return StatisticsResponse(
        system=system_statistics(tally),
        gpu=GpuStatistics(
            utilization=round(busy / len(workers), 4) if workers else None,
            memory_used=_gigabytes(sum(e.gpu_memory_used or 0 for e in on_gpu)) if on_gpu else None,
            memory_total=_gigabytes(sum(e.gpu_memory_total or 0 for e in on_gpu)) if on_gpu else None,
        ),
        workers=WorkerStatistics(total=len(workers), active=busy, idle=len(workers) - busy),
        models=model_capacity(workers, queued),
    )
