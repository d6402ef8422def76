"""The gateway's response bodies, in the workflow API's shapes (snake_case, field for field).

Fields beyond those of the IndexTTS service API (v1) are additive only (``error_code``, ``warnings``,
``audio_url``): a client written against it reads every field it knows where it expects it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tts_api.errors import ErrorCode
from tts_api.results import GpuReport, ModelInfo, SegmentTiming, SpeechParameters, VoicePreset


class WorkflowApiResponse(BaseModel):
    """Every answer to ``POST /v1/workflows`` names the workflow and the task that produced it."""

    workflow_id: str
    task_id: str | None = None


class SpeechResponse(WorkflowApiResponse):
    """``indextts.generate_speech`` succeeded (the workflow API's 响应示例)."""

    status: Literal["success"] = "success"
    output_path: str | None = Field(
        description="The WAV on the shared volume; null for speech streamed to its client (the "
        "OpenAI-compatible route), which keeps no file."
    )
    duration: float
    sample_rate: int
    text_length: int
    processing_time: float
    model_info: ModelInfo
    parameters: SpeechParameters
    warnings: list[str] = Field(default_factory=list)
    audio_url: str | None = Field(
        description="Where to download the WAV: GET this path on the gateway (null when no WAV was kept)."
    )
    segments: list[SegmentTiming] = Field(
        default_factory=list, description="Each segment spoken, with its start and end in the audio."
    )
    captions_url: str = Field(description="The segments as WebVTT captions: GET this path on the gateway.")


class HealthResponse(WorkflowApiResponse):
    status: Literal["healthy", "degraded", "unhealthy"]
    service: str
    gpu: GpuReport
    model: str
    gpu_lock: Literal["available", "busy"]


class ModelInfoResponse(WorkflowApiResponse):
    status: Literal["success"] = "success"
    model_info: ModelInfo


class VoicePresetsResponse(WorkflowApiResponse):
    status: Literal["success"] = "success"
    presets: dict[str, VoicePreset]
    total_count: int


class AcceptedResponse(WorkflowApiResponse):
    """The answer to an asynchronous request: poll ``status_url``."""

    status: Literal["accepted"] = "accepted"
    status_url: str


class DeletedResponse(BaseModel):
    """The answer to ``DELETE /v1/workflows/{workflow_id}``: the workflow is cancelled and deleted."""

    status: Literal["deleted"] = "deleted"
    workflow_id: str


class ErrorResponse(BaseModel):
    """The workflow API's 错误响应, plus ``error_code`` (one of its codes) and the field at fault."""

    status: Literal["error"] = "error"
    error: str
    error_code: ErrorCode
    task_id: str | None = None
    workflow_id: str | None = Field(
        default=None,
        description="The workflow that failed, or the id that names no workflow (WORKFLOW_NOT_FOUND).",
    )
    field: str | None = Field(default=None, description="The request field at fault, for INVALID_INPUT.")


class StageView(BaseModel):
    name: str
    status: str
    attempt: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    model: str | None = Field(default=None, description="The model its job is queued for.")


class WorkflowStatusResponse(BaseModel):
    """``GET /v1/workflows/status/{workflow_id}`` (the workflow API's 查询工作流状态)."""

    workflow_id: str
    status: str = Field(description="pending, queued, running, succeeded, failed or cancelled.")
    current_stage: str | None
    progress: int
    stages: list[StageView]
    created_at: datetime | None
    updated_at: datetime | None
    error: dict[str, Any] | None = None
    error_code: ErrorCode | None = None
    reason: str | None = Field(
        default=None,
        description="While unfinished, why it is where it is (the resource's Running condition): "
        "Queued (waiting for a free worker), NoWorkerForModel or WaitingForWorker (no live worker "
        "serves its model), StageRunning.",
    )
    message: str | None = Field(default=None, description="The same in words, with what happens next.")


WorkflowResult = SpeechResponse | HealthResponse | ModelInfoResponse | VoicePresetsResponse
