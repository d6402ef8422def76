"""heartbeat/all and statistics computed from workflow records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.monitoring import (
    GpuQuota,
    ModelCapacity,
    Tally,
    gpu_lock_health,
    heartbeat_all,
    statistics,
    system_statistics,
)
from tts_api.constants import Phase, StageState, TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.messages import WorkflowRef
from tts_api.registry import WORKER_ENTRY_TTL_SECONDS, ModelState, WorkerEntry, WorkerState
from tts_api.resource import (
    HeartbeatStatus,
    ObjectMeta,
    StageStatus,
    TTSWorkflow,
    TTSWorkflowSpec,
    TTSWorkflowStatus,
)
from tts_api.speech_models import model_of

BEAT = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)
SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})


def record(
    name: str, *stages: tuple[StageState, int, float | None], beat: bool = False, phase: Phase = Phase.RUNNING
) -> TTSWorkflow:
    return TTSWorkflow(
        metadata=ObjectMeta(name=name, uid=f"uid-{name}"),
        spec=SPEC,
        status=TTSWorkflowStatus(
            phase=phase,
            stages=[
                StageStatus(
                    name=list(TaskName)[index],
                    state=state,
                    attempt=attempt,
                    output={"processing_time": seconds} if seconds is not None else None,
                )
                for index, (state, attempt, seconds) in enumerate(stages)
            ],
            heartbeat=HeartbeatStatus(pod="inference-0", worker="inference-0/gpu0", last_heartbeat=BEAT)
            if beat
            else None,
        ),
    )


WORKFLOWS = [
    record("a", (StageState.SUCCEEDED, 1, 8.0), (StageState.RUNNING, 2, None), beat=True),
    record("b", (StageState.QUEUED, 1, None)),
    record("c", (StageState.FAILED, 3, None)),
    record("d", (StageState.SUCCEEDED, 1, 4.0)),
    record("e", (StageState.PENDING, 0, None)),
]


def test_heartbeat_all_lists_the_active_tasks_with_their_worker() -> None:
    body = heartbeat_all(Tally.of(WORKFLOWS)).model_dump(mode="json")
    assert (body["total_tasks"], body["active_tasks"]) == (5, 2)
    running, queued = body["tasks"]
    assert running == {
        "task_id": "uid-a/health_check/2",
        "task_name": "indextts.health_check",
        "workflow_id": "a",
        "worker_id": "inference-0/gpu0",
        "pod": "inference-0",
        "last_heartbeat": "2025-10-12T10:30:00Z",
        "status": "running",
    }
    assert (queued["workflow_id"], queued["status"], queued["worker_id"]) == ("b", "queued", None)


def test_statistics_count_finished_stages() -> None:
    stats = system_statistics(Tally.of(WORKFLOWS))
    assert (stats.total_tasks, stats.successful_tasks, stats.failed_tasks) == (3, 2, 1)
    assert stats.success_rate == pytest.approx(2 / 3, abs=1e-4)
    assert stats.avg_processing_time == pytest.approx(6.0)


def test_a_workflow_refused_before_any_task_ran_counts_as_one_failed_task() -> None:
    refused = TTSWorkflow(
        metadata=ObjectMeta(name="refused", uid="uid-refused"),
        spec=None,  # a spec the operator refused (made with kubectl)
        status=TTSWorkflowStatus(phase=Phase.FAILED),
    )
    failed_in_a_stage = record("c", (StageState.FAILED, 3, None), phase=Phase.FAILED)
    stats = system_statistics(Tally.of([refused, failed_in_a_stage]))
    assert (stats.total_tasks, stats.failed_tasks) == (2, 2)  # the stage's failure is not counted twice


def test_statistics_with_nothing_finished_have_no_rates() -> None:
    stats = system_statistics(Tally.of([record("x", (StageState.RUNNING, 1, None))]))
    assert (stats.total_tasks, stats.success_rate, stats.avg_processing_time) == (0, None, None)


# --- the GPU lock and statistics from registry entries -------------------------------------------

HEARTBEAT = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)


def entry(
    slot: str,
    *,
    busy: bool = False,
    model: ModelState = ModelState.READY,
    memory: tuple[int, int] | None = None,
    engine: str = "indextts2",
) -> WorkerEntry:
    return WorkerEntry(
        worker_id=f"inference-0/{slot}",
        pod="inference-0",
        slot=slot,
        state=WorkerState.BUSY if busy else WorkerState.IDLE,
        job_id="uid-a/generate_speech/1" if busy else None,
        workflow=WorkflowRef(uid="uid-a", name="a", namespace="default") if busy else None,
        job_started_at=HEARTBEAT if busy else None,
        engine=engine,
        model=model_of(engine),
        model_state=model,
        gpu="NVIDIA H100" if memory else None,
        gpu_memory_used=memory[0] if memory else None,
        gpu_memory_total=memory[1] if memory else None,
        last_heartbeat=HEARTBEAT,
        heartbeat_seconds=5,
    )


def finished_stages(
    succeeded: int, failed: int, code: ErrorCode = ErrorCode.PROCESSING_ERROR
) -> list[TTSWorkflow]:
    stages = [(StageState.SUCCEEDED, 1, 1.0)] * succeeded + [(StageState.FAILED, 1, None)] * failed
    workflows = [record(f"w{i}", stage) for i, stage in enumerate(stages)]
    for workflow in workflows:
        for stage in workflow.status.stages:
            if stage.state is StageState.FAILED:
                stage.error = ErrorInfo(code=code, message="x")
    return workflows


@pytest.mark.parametrize(
    ("workers", "workflows", "status", "reason"),
    [
        ([], [], "unhealthy", "no inference worker"),
        ([entry("gpu0")], [], "healthy", None),
        ([entry("gpu0", busy=True), entry("gpu1")], finished_stages(9, 1), "healthy", None),
        (
            [entry("gpu0", model=ModelState.ERROR)],
            [],
            "unhealthy",
            "model failed to load on inference-0/gpu0",
        ),
        ([entry("gpu0", model=ModelState.ERROR), entry("gpu1")], [], "degraded", "model failed to load"),
        ([entry("gpu0")], finished_stages(7, 3), "degraded", "success rate 0.70 is below 0.8"),
        (
            [entry("gpu0")],
            finished_stages(17, 3, ErrorCode.TASK_TIMEOUT) + finished_stages(0, 2, ErrorCode.TASK_TIMEOUT),
            "degraded",
            "timeout rate",
        ),
    ],
)
def test_gpu_lock_health(
    workers: list[WorkerEntry], workflows: list[TTSWorkflow], status: str, reason: str | None
) -> None:
    health = gpu_lock_health(workers, Tally.of(workflows))
    assert health.status == status
    if reason is None:
        assert health.reasons == []
    else:
        assert any(reason in given for given in health.reasons), health.reasons


def test_each_slot_is_a_lock_held_by_its_job() -> None:
    quota = GpuQuota(name="gpu-lock", hard=2, used=2)
    health = gpu_lock_health([entry("gpu1"), entry("gpu0", busy=True)], Tally(), quota=quota)
    assert (health.total_locks, health.active_locks) == (2, 1)
    busy, idle = health.locks
    assert (busy.lock_key, busy.locked, busy.job_id, busy.workflow_id) == (
        "gpu_lock:inference-0/gpu0",
        True,
        "uid-a/generate_speech/1",
        "a",
    )
    assert busy.last_acquired == HEARTBEAT
    assert busy.expires_at == HEARTBEAT + timedelta(seconds=WORKER_ENTRY_TTL_SECONDS)
    assert (idle.locked, idle.job_id, idle.last_acquired) == (False, None, None)
    assert health.quota == quota


def test_capacity_is_counted_per_model() -> None:
    workers = [
        entry("gpu0", busy=True),
        entry("gpu1"),
        entry("gpu2", engine="indextts25", model=ModelState.LOADING),
        entry("gpu3", engine="indextts25"),
    ]
    health = gpu_lock_health(workers, Tally())
    assert [lock.model for lock in health.locks] == [
        "indextts-2",
        "indextts-2",
        "indextts-2.5",
        "indextts-2.5",
    ]
    expected = {
        "indextts-2": ModelCapacity(workers=2, ready=2, busy=1, idle=1),
        "indextts-2.5": ModelCapacity(workers=2, ready=1, busy=0, idle=1),
    }
    assert health.models == expected
    assert statistics(workers, Tally()).models == expected


def test_jobs_waiting_are_counted_per_model_with_or_without_a_worker() -> None:
    """A model scaled to zero shows the work waiting for it; one with nothing waiting and no
    worker is not listed."""
    workers = [entry("gpu0", busy=True)]
    queued = {"indextts-2": 3, "indextts-2.5": 2, "espeak": 0}
    expected = {
        "indextts-2": ModelCapacity(workers=1, ready=1, busy=1, idle=0, queued=3),
        "indextts-2.5": ModelCapacity(workers=0, ready=0, busy=0, idle=0, queued=2),
    }
    assert gpu_lock_health(workers, Tally(), queued=queued).models == expected
    assert statistics(workers, Tally(), queued).models == expected


def test_statistics_of_workers_and_gpus() -> None:
    stats = statistics(
        [
            entry("gpu0", busy=True, memory=(6_200_000_000, 8_000_000_000)),
            entry("gpu1", memory=(1_000_000_000, 8_000_000_000)),
        ],
        Tally.of(finished_stages(19, 1)),
    )
    assert (stats.workers.total, stats.workers.active, stats.workers.idle) == (2, 1, 1)
    assert stats.gpu.utilization == 0.5
    assert (stats.gpu.memory_used, stats.gpu.memory_total) == ("7.2GB", "16.0GB")
    assert stats.system.success_rate == 0.95


def test_statistics_without_gpus_or_workers() -> None:
    stats = statistics([], Tally())
    assert (stats.gpu.utilization, stats.gpu.memory_used, stats.workers.total) == (None, None, 0)
