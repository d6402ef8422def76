"""From a TTSWorkflow's status to the workflow API's response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.presenters import result_response, status_response
from gateway.responses import (
    ErrorResponse,
    HealthResponse,
    ModelInfoResponse,
    SpeechResponse,
    VoicePresetsResponse,
)
from tests.gateway.reference_shapes import (
    REFERENCE_HEALTH,
    REFERENCE_MODEL_INFO,
    REFERENCE_PRESETS,
    REFERENCE_SPEECH,
)
from tts_api.constants import Phase, StageState, TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.resource import ObjectMeta, StageStatus, TTSWorkflow, TTSWorkflowSpec, TTSWorkflowStatus

T0 = datetime(2025, 10, 12, 10, 25, tzinfo=UTC)
T1 = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)
SPEC = TTSWorkflowSpec.model_validate({"workflowConfig": {"workflowChain": ["indextts.health_check"]}})

# Each task's output as the reference's examples show it (ids aside: the gateway adds its own).
SPEECH_OUTPUT: dict[str, Any] = {
    k: v for k, v in REFERENCE_SPEECH.items() if k not in ("status", "workflow_id", "task_id")
}
OUTPUTS: dict[TaskName, dict[str, Any]] = {
    TaskName.GENERATE_SPEECH: SPEECH_OUTPUT,
    TaskName.HEALTH_CHECK: REFERENCE_HEALTH,
    TaskName.GET_MODEL_INFO: REFERENCE_MODEL_INFO,
    TaskName.LIST_VOICE_PRESETS: {**REFERENCE_PRESETS, "total_count": len(REFERENCE_PRESETS["presets"])},
}


def workflow(phase: Phase, *stages: StageStatus, error: ErrorInfo | None = None) -> TTSWorkflow:
    return TTSWorkflow(
        metadata=ObjectMeta(name="workflow_123456", uid="uid-1", creationTimestamp=T0),
        spec=SPEC,  # presenters read only status and metadata
        status=TTSWorkflowStatus(
            phase=phase,
            stages=list(stages),
            current_stage=stages[-1].name if stages else None,
            progress=100 if phase is Phase.SUCCEEDED else 75,
            error=error,
            updated_at=T1,
        ),
    )


def done(task: TaskName, attempt: int = 1) -> StageStatus:
    return StageStatus(
        name=task,
        state=StageState.SUCCEEDED,
        attempt=attempt,
        started_at=T0,
        finished_at=T1,
        output=OUTPUTS[task],
    )


def test_status_in_the_reference_shape() -> None:
    running = StageStatus(
        name=TaskName.GENERATE_SPEECH, state=StageState.RUNNING, attempt=1, started_at=T0, model="indextts-2"
    )
    body = status_response(workflow(Phase.RUNNING, running)).model_dump(mode="json")
    assert body["workflow_id"] == "workflow_123456"
    assert body["status"] == "running"
    assert body["current_stage"] == "indextts.generate_speech"
    assert body["progress"] == 75
    assert body["stages"][0] == {
        "name": "indextts.generate_speech",
        "status": "running",
        "attempt": 1,
        "started_at": "2025-10-12T10:25:00Z",
        "finished_at": None,
        "output": None,
        "error": None,
        "model": "indextts-2",
    }
    assert (body["created_at"], body["updated_at"]) == ("2025-10-12T10:25:00Z", "2025-10-12T10:30:00Z")


def test_running_workflow_has_no_result_yet() -> None:
    assert result_response(workflow(Phase.RUNNING)) is None
    assert result_response(workflow(Phase.QUEUED)) is None


@pytest.mark.parametrize(
    ("task", "shape"),
    [
        (TaskName.GENERATE_SPEECH, SpeechResponse),
        (TaskName.HEALTH_CHECK, HealthResponse),
        (TaskName.GET_MODEL_INFO, ModelInfoResponse),
        (TaskName.LIST_VOICE_PRESETS, VoicePresetsResponse),
    ],
)
def test_each_task_answers_in_its_reference_shape(task: TaskName, shape: type) -> None:
    response = result_response(workflow(Phase.SUCCEEDED, done(task, attempt=2)))
    assert isinstance(response, shape)
    assert response is not None
    body = response.model_dump(mode="json", exclude_none=True)
    assert body["workflow_id"] == "workflow_123456"
    assert body["task_id"] == f"uid-1/{task.short}/2"
    for key, value in OUTPUTS[task].items():
        if key not in {"model_info"}:
            assert body[key] == value, key


def test_speech_answer_has_the_reference_fields_and_the_audio_link() -> None:
    response = result_response(workflow(Phase.SUCCEEDED, done(TaskName.GENERATE_SPEECH)))
    assert isinstance(response, SpeechResponse)
    body = response.model_dump(mode="json")
    assert body["status"] == "success"
    assert body["model_info"] == {
        **SPEECH_OUTPUT["model_info"],
        "model_path": None,
        "status": None,
        "capabilities": None,
    }
    assert body["audio_url"] == "/v1/workflows/workflow_123456/audio"


def test_chain_answers_with_its_last_task() -> None:
    response = result_response(
        workflow(Phase.SUCCEEDED, done(TaskName.HEALTH_CHECK), done(TaskName.GET_MODEL_INFO))
    )
    assert isinstance(response, ModelInfoResponse)


def test_failure_answers_with_the_workflow_api_error_body() -> None:
    failed = StageStatus(
        name=TaskName.GENERATE_SPEECH,
        state=StageState.FAILED,
        attempt=3,
        error=ErrorInfo(code=ErrorCode.TASK_TIMEOUT, message="no heartbeat for 60 s"),
    )
    response = result_response(workflow(Phase.FAILED, failed, error=failed.error))
    assert isinstance(response, ErrorResponse)
    assert response.model_dump(mode="json", exclude_none=True) == {
        "status": "error",
        "error": "no heartbeat for 60 s",
        "error_code": "TASK_TIMEOUT",
        "task_id": "uid-1/generate_speech/3",
        "workflow_id": "workflow_123456",
    }
    assert response.error_code.http_status == 408


def test_cancelled_workflow_says_so() -> None:
    response = result_response(workflow(Phase.CANCELLED))
    assert isinstance(response, ErrorResponse)
    assert "cancelled" in response.error
