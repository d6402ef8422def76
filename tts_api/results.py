"""What each task returns, in the response shapes of the IndexTTS service API (v1).

Workers send these in ``completed`` events; the operator keeps them in ``status.stages[].output``
(and the speech result in ``status.result``); the gateway answers with them, snake_case.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tts_api.constants import TaskName


class ResultModel(BaseModel):
    """Base of result models: camelCase aliases in the CR; unknown fields kept for newer workers."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )


class Capabilities(ResultModel):
    """What an engine can do, reported honestly (the API's ``capabilities``)."""

    text_to_speech: bool = True
    voice_cloning: bool = False
    emotion_control: bool = False
    multi_language: bool = False
    real_time: bool = False
    languages: list[str] = Field(default_factory=list, description="Language codes the engine speaks.")


class ModelInfo(ResultModel):
    """The API's ``model_info``: short in a speech result, full from ``get_model_info``."""

    model_type: str = Field(description="Engine name, e.g. IndexTTS2 or espeak-ng.")
    model_version: str
    device: str = Field(description="Where it runs, e.g. cuda:0 or cpu.")
    model_path: str | None = None
    status: str | None = Field(default=None, description="ready, loading or error.")
    capabilities: Capabilities | None = None


class SpeechParameters(ResultModel):
    """The parameters a synthesis used (the API's ``parameters``), echoed back to the client."""

    reference_audio: str | None = None
    emotion_reference: str | None = None
    emotion_alpha: float | None = None
    emotion_vector: list[float] | None = None
    emotion_text: str | None = None
    use_random: bool | None = None
    max_text_tokens_per_segment: int | None = None
    model: str | None = Field(default=None, description="The model that spoke (indextts-2, espeak, ...).")
    language: str | None = Field(default=None, description="The language asked for; none: detected.")


class SegmentTiming(ResultModel):
    """One segment of the text as spoken: its words and where they fall in the audio."""

    text: str
    start: float = Field(ge=0, description="Seconds from the start of the audio.")
    end: float = Field(ge=0, description="Seconds from the start of the audio.")


class SpeechResult(ResultModel):
    """Output of ``indextts.generate_speech``: the workflow API's response fields."""

    output_path: str | None = Field(
        default=None, description="Where the WAV was written; none for speech streamed to its reader."
    )
    duration: float = Field(ge=0, description="Seconds of audio written.")
    sample_rate: int = Field(gt=0)
    text_length: int = Field(ge=0, description="Characters of text spoken.")
    processing_time: float = Field(ge=0, description="Seconds the synthesis took.")
    model_info: ModelInfo
    parameters: SpeechParameters
    warnings: list[str] = Field(
        default_factory=list,
        description="What the engine could not honour, e.g. voice cloning on an engine without it.",
    )
    segments: list[SegmentTiming] = Field(
        default_factory=list,
        description="Each segment the engine spoke, with its start and end in the audio (captions).",
    )


class GpuReport(ResultModel):
    available: bool
    count: int = Field(ge=0)
    name: str | None = None


class HealthReport(ResultModel):
    """Output of ``indextts.health_check``."""

    status: Literal["healthy", "degraded", "unhealthy"]
    service: str = "indextts_service"
    gpu: GpuReport
    model: str = Field(description="ready, loading or error.")
    gpu_lock: Literal["available", "busy"]


class ModelInfoReport(ResultModel):
    """Output of ``indextts.get_model_info``."""

    status: Literal["success"] = "success"
    model_info: ModelInfo


class VoicePreset(ResultModel):
    name: str
    description: str = ""
    language: str = ""
    gender: str = ""


class VoicePresetList(ResultModel):
    """Output of ``indextts.list_voice_presets``."""

    status: Literal["success"] = "success"
    presets: dict[str, VoicePreset]
    total_count: int = Field(ge=0)


TaskOutput = SpeechResult | HealthReport | ModelInfoReport | VoicePresetList

OUTPUT_MODELS: dict[TaskName, type[ResultModel]] = {
    TaskName.GENERATE_SPEECH: SpeechResult,
    TaskName.HEALTH_CHECK: HealthReport,
    TaskName.GET_MODEL_INFO: ModelInfoReport,
    TaskName.LIST_VOICE_PRESETS: VoicePresetList,
}
