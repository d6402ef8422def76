"""The reference's shapes: the example response bodies the workflow API documents, and a check
that ours have their shape.

A body has the reference's shape when every key of the reference's example is present, recursively, with a
value of the same JSON type (any number for a number). Extra keys are allowed: the API adds fields,
it never removes or retypes one.
"""

from __future__ import annotations

import re
from typing import Any

REFERENCE_SPEECH: dict[str, Any] = {
    "status": "success",
    "workflow_id": "workflow_123456",
    "task_id": "task_789012",
    "output_path": "/share/workflows/output/speech.wav",
    "duration": 12.5,
    "sample_rate": 22050,
    "text_length": 25,
    "processing_time": 8.3,
    "model_info": {"model_type": "IndexTTS2", "model_version": "2.0", "device": "cuda:0"},
    "parameters": {
        "reference_audio": "/path/to/reference.wav",
        "emotion_alpha": 0.65,
        "emotion_vector": [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9],
        "use_random": False,
        "max_text_tokens_per_segment": 120,
    },
}
REFERENCE_ERROR: dict[str, Any] = {
    "status": "error",
    "error": "输入文本不能为空",
    "task_id": "task_789012",
    "workflow_id": "workflow_123456",
}
REFERENCE_HEALTH: dict[str, Any] = {
    "status": "healthy",
    "service": "indextts_service",
    "gpu": {"available": True, "count": 1, "name": "NVIDIA GeForce RTX 4090"},
    "model": "ready",
    "gpu_lock": "available",
}
REFERENCE_MODEL_INFO: dict[str, Any] = {
    "status": "success",
    "model_info": {
        "model_type": "IndexTTS2",
        "model_version": "2.0",
        "device": "cuda:0",
        "model_path": "/models/indextts",
        "status": "ready",
        "capabilities": {
            "text_to_speech": True,
            "voice_cloning": True,
            "emotion_control": True,
            "multi_language": True,
            "real_time": False,
        },
    },
}
REFERENCE_PRESETS: dict[str, Any] = {
    "status": "success",
    "presets": {
        "default": {
            "name": "Default Voice",
            "description": "默认语音",
            "language": "zh-CN",
            "gender": "female",
        },
    },
    "total_count": 3,
}
REFERENCE_GPU_LOCK: dict[str, Any] = {
    "status": "healthy",
    "total_locks": 1,
    "active_locks": 0,
    "locks": [{"lock_key": "gpu_lock:0", "locked": False, "last_acquired": None, "expires_at": None}],
    "health_thresholds": {"min_success_rate": 0.8, "max_timeout_rate": 0.2},
}
REFERENCE_HEARTBEATS: dict[str, Any] = {
    "total_tasks": 5,
    "active_tasks": 3,
    "tasks": [
        {
            "task_id": "task_123",
            "task_name": "indextts.generate_speech",
            "worker_id": "worker@hostname",
            "last_heartbeat": "2025-10-12T10:30:00Z",
            "status": "running",
        }
    ],
}
REFERENCE_STATISTICS: dict[str, Any] = {
    "system": {
        "total_tasks": 100,
        "successful_tasks": 95,
        "failed_tasks": 5,
        "success_rate": 0.95,
        "avg_processing_time": 15.2,
    },
    "gpu": {"utilization": 0.75, "memory_used": "6.2GB", "memory_total": "8.0GB"},
    "workers": {"total": 1, "active": 1, "idle": 0},
}
REFERENCE_STATUS: dict[str, Any] = {
    "workflow_id": "workflow_123456",
    "status": "running",
    "current_stage": "indextts.generate_speech",
    "progress": 75,
    "stages": [
        {
            "name": "indextts.generate_speech",
            "status": "running",
            "started_at": "2025-10-12T10:25:00Z",
            "output": {"processing_time": 8.3},
        }
    ],
    "created_at": "2025-10-12T10:25:00Z",
    "updated_at": "2025-10-12T10:30:00Z",
}

# Objects whose keys are names (the reference's examples name a few), not fields.
MAPS = frozenset({"presets"})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_errors(
    ours: Any, reference: Any, *, nullable: frozenset[str] = frozenset(), path: str = ""
) -> list[str]:
    """Where ``ours`` departs from the reference's ``reference`` example; ``nullable`` names paths that may be
    null (``stages[].output`` stands for every item's)."""
    here = path or "<body>"
    if reference is None or (ours is None and re.sub(r"\[\d+\]", "[]", path) in nullable):
        return []
    if _kind(ours) != _kind(reference):
        return [f"{here}: {_kind(ours)} where the reference has {_kind(reference)}"]
    errors: list[str] = []
    if isinstance(reference, dict):
        if path.rsplit(".", 1)[-1] in MAPS:
            sample = next(iter(reference.values()))
            for name, value in ours.items():
                errors += shape_errors(value, sample, nullable=nullable, path=f"{path}.{name}")
            return errors
        for key, value in reference.items():
            child = f"{path}.{key}" if path else key
            if key not in ours:
                errors.append(f"{child}: missing")
            else:
                errors += shape_errors(ours[key], value, nullable=nullable, path=child)
    elif isinstance(reference, list) and reference:
        for index, item in enumerate(ours):
            errors += shape_errors(item, reference[0], nullable=nullable, path=f"{path}[{index}]")
    return errors
