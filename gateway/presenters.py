"""From a TTSWorkflow to the workflow API's response bodies: plain functions, no I/O."""

from __future__ import annotations

from typing import Any

from gateway.responses import (
    ErrorResponse,
    HealthResponse,
    ModelInfoResponse,
    SpeechResponse,
    StageView,
    VoicePresetsResponse,
    WorkflowResult,
    WorkflowStatusResponse,
)
from tts_api.constants import ConditionType, Phase
from tts_api.errors import ErrorCode
from tts_api.messages import make_job_id
from tts_api.resource import StageStatus, TTSWorkflow, TTSWorkflowStatus
from tts_api.results import (
    OUTPUT_MODELS,
    HealthReport,
    ModelInfoReport,
    SpeechResult,
    VoicePresetList,
)


def workflow_id(workflow: TTSWorkflow) -> str:
    """The id clients use: the resource's name (unique in the gateway's namespace)."""
    return workflow.metadata.name


def audio_url(workflow: TTSWorkflow) -> str:
    return f"/v1/workflows/{workflow_id(workflow)}/audio"


def captions_url(workflow: TTSWorkflow) -> str:
    return f"/v1/workflows/{workflow_id(workflow)}/captions.vtt"


def status_url(workflow: TTSWorkflow) -> str:
    return f"/v1/workflows/status/{workflow_id(workflow)}"


def task_id(workflow: TTSWorkflow, stage: StageStatus | None) -> str | None:
    """The job that ran ``stage``: ``uid/stage/attempt``, as on NATS."""
    if stage is None or stage.attempt < 1 or workflow.metadata.uid is None:
        return None
    return make_job_id(workflow.metadata.uid, stage.name, stage.attempt)


def rest_output(stage: StageStatus) -> dict[str, Any] | None:
    """A stage's output in the REST API's snake_case (the resource keeps it camelCase)."""
    if stage.output is None:
        return None
    parsed: dict[str, Any] = OUTPUT_MODELS[stage.name].model_validate(stage.output).model_dump(mode="json")
    return parsed


def status_response(workflow: TTSWorkflow) -> WorkflowStatusResponse:
    status = workflow.status
    created = workflow.metadata.creationTimestamp or status.accepted_at
    return WorkflowStatusResponse(
        workflow_id=workflow_id(workflow),
        status=status.phase.value.lower(),
        current_stage=status.current_stage.value if status.current_stage else None,
        progress=status.progress,
        stages=[
            StageView(
                name=stage.name.value,
                status=stage.state.value.lower(),
                attempt=stage.attempt,
                started_at=stage.started_at,
                finished_at=stage.finished_at,
                output=rest_output(stage),
                error=stage.error.model_dump(mode="json") if stage.error else None,
                model=stage.model,
            )
            for stage in status.stages
        ],
        created_at=created,
        updated_at=status.updated_at
        or status.finished_at
        or status.started_at
        or status.accepted_at
        or created,
        error=status.error.model_dump(mode="json") if status.error else None,
        error_code=status.error.code if status.error else None,
        **_where_it_is(status),
    )


def _where_it_is(status: TTSWorkflowStatus) -> dict[str, str | None]:
    """The Running condition's reason and message of an unfinished workflow."""
    if status.phase.finished:
        return {}
    running = next((c for c in status.conditions if c.type == ConditionType.RUNNING), None)
    return {} if running is None else {"reason": running.reason, "message": running.message}


def _last_stage(workflow: TTSWorkflow) -> StageStatus | None:
    return workflow.status.stages[-1] if workflow.status.stages else None


def _failed_stage(workflow: TTSWorkflow) -> StageStatus | None:
    failed = [stage for stage in workflow.status.stages if stage.error is not None]
    return failed[-1] if failed else _last_stage(workflow)


def error_response(workflow: TTSWorkflow) -> ErrorResponse:
    """The workflow API's error body for a workflow that failed or was cancelled."""
    error = workflow.status.error
    if error is None:
        message = (
            "the workflow was cancelled before it finished"
            if workflow.status.phase is Phase.CANCELLED
            else "the workflow failed without an error report; see its Kubernetes events"
        )
        code = ErrorCode.PROCESSING_ERROR
    else:
        message, code = error.message, error.code
    return ErrorResponse(
        error=message,
        error_code=code,
        workflow_id=workflow_id(workflow),
        task_id=task_id(workflow, _failed_stage(workflow)),
    )


def result_response(workflow: TTSWorkflow) -> WorkflowResult | ErrorResponse | None:
    """The answer for a finished workflow (its last stage's result), or None while it runs.

    A chain of several tasks answers with the last task's result; every stage's output stays
    available from the status endpoint.
    """
    phase = workflow.status.phase
    if not phase.finished:
        return None
    stage = _last_stage(workflow)
    if phase is not Phase.SUCCEEDED or stage is None or stage.output is None:
        return error_response(workflow)
    ids = {"workflow_id": workflow_id(workflow), "task_id": task_id(workflow, stage)}
    match OUTPUT_MODELS[stage.name].model_validate(stage.output):
        case SpeechResult() as speech:
            url = audio_url(workflow) if speech.output_path is not None else None
            return SpeechResponse(
                **ids, **speech.model_dump(), audio_url=url, captions_url=captions_url(workflow)
            )
        case HealthReport() as health:
            return HealthResponse(**ids, **health.model_dump())
        case ModelInfoReport() as info:
            return ModelInfoResponse(**ids, model_info=info.model_info)
        case VoicePresetList() as presets:
            return VoicePresetsResponse(**ids, presets=presets.presets, total_count=presets.total_count)
    raise AssertionError(f"no response shape for {stage.name}")  # OUTPUT_MODELS covers every task
