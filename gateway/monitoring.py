"""The seed's monitoring answers, computed from workflow records: plain functions, no I/O.

``heartbeat/all`` lists every active task with its worker and last heartbeat; ``statistics``'s
``system`` block counts finished stages. GPU and worker figures come from the worker registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from gateway.presenters import task_id
from tts_api.constants import StageState
from tts_api.resource import TTSWorkflow

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


def heartbeat_all(workflows: Iterable[TTSWorkflow]) -> HeartbeatAllResponse:
    """Every dispatched stage counts as a task; the active ones are listed with their heartbeat."""
    total = 0
    active: list[TaskHeartbeat] = []
    for workflow in workflows:
        heartbeat = workflow.status.heartbeat
        for stage in workflow.status.stages:
            if stage.attempt < 1:
                continue
            total += 1
            if stage.state in ACTIVE_STATES:
                active.append(
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
    return HeartbeatAllResponse(total_tasks=total, active_tasks=len(active), tasks=active)


def system_statistics(workflows: Iterable[TTSWorkflow]) -> SystemStatistics:
    """Totals over finished stages; success rate and mean processing time where there are any."""
    succeeded = failed = 0
    durations: list[float] = []
    for workflow in workflows:
        for stage in workflow.status.stages:
            if stage.state is StageState.SUCCEEDED:
                succeeded += 1
                processing = (stage.output or {}).get("processing_time")
                if isinstance(processing, int | float):
                    durations.append(float(processing))
            elif stage.state is StageState.FAILED:
                failed += 1
    finished = succeeded + failed
    return SystemStatistics(
        total_tasks=finished,
        successful_tasks=succeeded,
        failed_tasks=failed,
        success_rate=round(succeeded / finished, 4) if finished else None,
        avg_processing_time=round(sum(durations) / len(durations), 3) if durations else None,
    )
