"""Small builders for operator tests: specs, worker events and results in the shared models' shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.messages import (
    CompletedEvent,
    FailedEvent,
    HeartbeatEvent,
    Progress,
    ProgressEvent,
    StartedEvent,
    WorkflowRef,
    make_job_id,
)
from tts_api.policy import ValidationPolicy

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
REF = WorkflowRef(uid="uid-1", name="hello", namespace="default")

SPEECH = TaskName.GENERATE_SPEECH
HEALTH = TaskName.HEALTH_CHECK
INFO = TaskName.GET_MODEL_INFO
PRESETS = TaskName.LIST_VOICE_PRESETS

# The operator's policy: it does not mount the shared volume, so paths are checked lexically.
POLICY = ValidationPolicy(shared_dir=Path("/nonexistent/indextts-share"), shared_prefix="/share")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spec(*chain: TaskName, **extra: Any) -> dict[str, Any]:
    """A valid camelCase spec running ``chain`` (speech by default)."""
    tasks = list(chain) or [SPEECH]
    config: dict[str, Any] = {"workflowChain": [t.value for t in tasks]}
    if SPEECH in tasks:
        config["indexttsConfig"] = {"text": "hello there", "outputPath": "/share/workflows/output/hello.wav"}
    return {"workflowConfig": config, **extra}


def speech_output(path: str = "/share/workflows/output/hello.wav") -> dict[str, Any]:
    return {
        "output_path": path,
        "duration": 1.5,
        "sample_rate": 22050,
        "text_length": 11,
        "processing_time": 0.4,
        "model_info": {"model_type": "espeak-ng", "model_version": "1.52", "device": "cpu"},
        "parameters": {"emotion_alpha": 0.65},
    }


OUTPUTS: dict[TaskName, dict[str, Any]] = {
    SPEECH: speech_output(),
    HEALTH: {
        "status": "healthy",
        "gpu": {"available": False, "count": 0},
        "model": "ready",
        "gpu_lock": "available",
    },
    INFO: {
        "status": "success",
        "model_info": {"model_type": "espeak-ng", "model_version": "1", "device": "cpu"},
    },
    PRESETS: {"status": "success", "presets": {}, "total_count": 0},
}


def _base(task: TaskName, attempt: int, ref: WorkflowRef, when: float) -> dict[str, Any]:
    return {
        "job_id": make_job_id(ref.uid, task, attempt),
        "workflow": ref,
        "task": task,
        "attempt": attempt,
        "pod": f"pod-{attempt}",
        "worker_id": "w0",
        "at": at(when),
    }


def started(
    task: TaskName = SPEECH, attempt: int = 1, *, ref: WorkflowRef = REF, when: float = 0
) -> StartedEvent:
    return StartedEvent(**_base(task, attempt, ref, when), gpu="NVIDIA H100")


def heartbeat(
    task: TaskName = SPEECH, attempt: int = 1, *, done: int | None = None, total: int = 4, when: float = 0
) -> HeartbeatEvent:
    progress = Progress(segments_done=done, segments_total=total) if done is not None else None
    return HeartbeatEvent(**_base(task, attempt, REF, when), progress=progress)


def progressed(task: TaskName = SPEECH, attempt: int = 1, *, done: int, total: int = 4) -> ProgressEvent:
    return ProgressEvent(
        **_base(task, attempt, REF, 0), progress=Progress(segments_done=done, segments_total=total)
    )


def completed(
    task: TaskName = SPEECH, attempt: int = 1, *, output: dict[str, Any] | None = None, when: float = 0
) -> CompletedEvent:
    return CompletedEvent(
        **_base(task, attempt, REF, when), output=OUTPUTS[task] if output is None else output
    )


def failed(
    task: TaskName = SPEECH,
    attempt: int = 1,
    *,
    code: ErrorCode = ErrorCode.PROCESSING_ERROR,
    retryable: bool = False,
    worker_lost: bool = False,
) -> FailedEvent:
    error = ErrorInfo(code=code, message=f"{code.value} in the test")
    return FailedEvent(
        **_base(task, attempt, REF, 0),
        error=error,
        retryable=retryable or worker_lost,
        worker_lost=worker_lost,
    )


def lost(task: TaskName = SPEECH, attempt: int = 1) -> FailedEvent:
    """What the worker a dead worker's job is redelivered to reports: the attempt's worker was lost."""
    return failed(task, attempt, worker_lost=True)
