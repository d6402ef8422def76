"""heartbeat/all and statistics computed from workflow records."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.monitoring import heartbeat_all, system_statistics
from tts_api.constants import Phase, StageState, TaskName
from tts_api.resource import (
    HeartbeatStatus,
    ObjectMeta,
    StageStatus,
    TTSWorkflow,
    TTSWorkflowSpec,
    TTSWorkflowStatus,
)

BEAT = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)
SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})


def record(name: str, *stages: tuple[StageState, int, float | None], beat: bool = False) -> TTSWorkflow:
    return TTSWorkflow(
        metadata=ObjectMeta(name=name, uid=f"uid-{name}"),
        spec=SPEC,
        status=TTSWorkflowStatus(
            phase=Phase.RUNNING,
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
    body = heartbeat_all(WORKFLOWS).model_dump(mode="json")
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
    stats = system_statistics(WORKFLOWS)
    assert (stats.total_tasks, stats.successful_tasks, stats.failed_tasks) == (3, 2, 1)
    assert stats.success_rate == pytest.approx(2 / 3, abs=1e-4)
    assert stats.avg_processing_time == pytest.approx(6.0)


def test_statistics_with_nothing_finished_have_no_rates() -> None:
    stats = system_statistics([record("x", (StageState.RUNNING, 1, None))])
    assert (stats.total_tasks, stats.success_rate, stats.avg_processing_time) == (0, None, None)
