"""The request of the IndexTTS service API (v1), ``POST /v1/workflows``, as pydantic models.

One set of models serves two spellings: the REST API (the workflow API) speaks snake_case
(``workflow_config.indextts_config.emotion_alpha``); the TTSWorkflow resource speaks camelCase like
Kubernetes (``spec.workflowConfig.indexttsConfig.emotionAlpha``). Validate REST bodies with
:func:`tts_api.validation.parse_request` and resource specs with
:func:`tts_api.validation.parse_spec`; both name the offending field in their own spelling.
"""

from __future__ import annotations

import math
import re
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from tts_api.constants import EMOTION_NAMES, TaskName
from tts_api.outputs import (
    OutputRuleError,
    check_name_lengths,
    check_output_location,
    check_output_on_volume,
)
from tts_api.policy import (
    EMOTION_TEXT_LENGTH_CEILING,
    MAX_TOKENS_PER_SEGMENT,
    MIN_TOKENS_PER_SEGMENT,
    PRESET_NAME_PATTERN,
    TEXT_LENGTH_CEILING,
    policy_from_context,
)
from tts_api.shared_paths import MAX_PATH_LENGTH, SharedPathError
from tts_api.speech_models import KNOWN_MODELS, MODEL_NAME_PATTERN, unknown_model_message

# Patterns for the CRD schema, so that the API server rejects what the validators below reject.
# They are RE2 (no look-ahead): a path is segments none of which is "..", the last naming a .wav.
NOT_BLANK_PATTERN = r"\S"
_SEGMENT = r"(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+|\.)"
_WAV_PATH = rf"/?(?:{_SEGMENT}/+)*[^/]*\.[wW][aA][vV]"
WAV_PATH_PATTERN = rf"^{_WAV_PATH}$"
WAV_PATH_OR_PRESET_PATTERN = rf"^(?:{_WAV_PATH}|{PRESET_NAME_PATTERN.strip('^$')})$"

DEFAULT_EMOTION_ALPHA = 0.65
DEFAULT_TOKENS_PER_SEGMENT = 120


class ApiModel(BaseModel):
    """Base of every API model: snake_case names, camelCase aliases, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=False,
        extra="forbid",
    )


def _field_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("tts_invalid", message)


def _required_here(field: str, message: str) -> PydanticCustomError:
    """An error about a field below the one being validated; ``field`` is appended to its loc."""
    return PydanticCustomError("tts_invalid_child", message, {"field": field})


EmotionWeight = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]


LANGUAGE_PATTERN = r"^[a-z]{2}$"


class IndexTTSConfig(ApiModel):
    """``workflow_config.indextts_config``: every field of the workflow API's table, with its default."""

    text: str | None = Field(
        default=None,
        min_length=1,
        max_length=TEXT_LENGTH_CEILING,
        strict=True,
        json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        description="The text to speak (要转换的文本内容). Required for indextts.generate_speech; "
        "must not be blank; at most TTS_MAX_TEXT_LENGTH characters.",
    )
    output_path: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
        strict=True,
        json_schema_extra={"pattern": WAV_PATH_PATTERN},
        description="Where the WAV is written: a .wav path under the output folder "
        "(/share/workflows/output/... by default, TTS_OUTPUT_DIR) that holds no other file. "
        "Required for indextts.generate_speech.",
    )
    reference_audio: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
        strict=True,
        json_schema_extra={"pattern": WAV_PATH_OR_PRESET_PATTERN},
        description="Voice to clone (音色参考音频): a .wav under the shared root, or a voice preset name.",
    )
    emotion_reference: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
        strict=True,
        json_schema_extra={"pattern": WAV_PATH_OR_PRESET_PATTERN},
        description="Emotion reference audio (情感参考音频): a .wav under the shared root, "
        "or a voice preset name.",
    )
    emotion_alpha: float = Field(
        default=DEFAULT_EMOTION_ALPHA,
        ge=0.0,
        le=1.0,
        strict=True,
        allow_inf_nan=False,
        description="Emotion strength (情感强度), 0.0 to 1.0.",
    )
    emotion_vector: list[EmotionWeight] | None = Field(
        default=None,
        min_length=len(EMOTION_NAMES),
        max_length=len(EMOTION_NAMES),
        description="Eight weights in [0, 1], in the order " + ", ".join(EMOTION_NAMES) + ". "
        "A vector whose weights sum to more than 1 is scaled down proportionally to sum 1.",
    )
    emotion_text: str | None = Field(
        default=None,
        min_length=1,
        max_length=EMOTION_TEXT_LENGTH_CEILING,
        strict=True,
        json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        description="A description of the emotion (情感描述文本), "
        "turned into an emotion vector by the engine.",
    )
    use_random: StrictBool = Field(default=False, description="Sample randomly (是否使用随机采样).")
    language: str | None = Field(
        default=None,
        strict=True,
        json_schema_extra={"pattern": LANGUAGE_PATTERN},
        description="The text's language, an ISO 639-1 code (en, zh, es, ja, ar); unset: the engine "
        "detects it (indextts-2.5) or speaks its own mix (indextts-2: Chinese and English).",
    )
    model: str | None = Field(
        default=None,
        max_length=63,
        strict=True,
        json_schema_extra={"pattern": MODEL_NAME_PATTERN},
        description="The speech model: one of the deployment's models (TTS_MODELS: "
        + ", ".join(KNOWN_MODELS)
        + " by default); unset: the deployment's default (TTS_DEFAULT_MODEL).",
    )
    max_text_tokens_per_segment: int = Field(
        default=DEFAULT_TOKENS_PER_SEGMENT,
        ge=MIN_TOKENS_PER_SEGMENT,
        le=MAX_TOKENS_PER_SEGMENT,
        strict=True,
        description=f"Text tokens per synthesized segment (每段最大token数), "
        f"{MIN_TOKENS_PER_SEGMENT} to {MAX_TOKENS_PER_SEGMENT}.",
    )

    @field_validator("text", "emotion_text")
    @classmethod
    def _not_blank(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise _field_error("must not be empty or only whitespace")
        if info.field_name == "text":
            limit = policy_from_context(info.context).max_text_length
            if len(value) > limit:
                raise _field_error(
                    f"is {len(value)} characters; at most {limit} are accepted "
                    "(split the text into several requests)"
                )
        return value

    @field_validator("language")
    @classmethod
    def _language_code(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(LANGUAGE_PATTERN, value) is None:
            raise _field_error(f"{value!r} is not a language code; give an ISO 639-1 code such as en or zh")
        return value

    @field_validator("model")
    @classmethod
    def _configured_model(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        known = policy_from_context(info.context).models
        if known and value not in known:
            raise _field_error(unknown_model_message(value, known))
        return value

    @field_validator("output_path")
    @classmethod
    def _output_under_root(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _output_path(value, info)

    @field_validator("reference_audio", "emotion_reference")
    @classmethod
    def _audio_or_preset(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if is_preset_name(value):
            known = policy_from_context(info.context).voice_presets
            if known is not None and value not in known:
                listing = ", ".join(sorted(known)) or "none are configured"
                raise _field_error(
                    f"{value!r} is neither a .wav path under the shared root nor a known voice preset "
                    f"(presets: {listing})"
                )
            return value
        return _shared_path(value, info, must_exist=True)

    def effective_emotion_vector(self) -> list[float] | None:
        """The vector the engine applies: as given, or scaled down to sum 1 when it sums above 1."""
        return scaled_emotion_vector(self.emotion_vector)


def is_preset_name(value: str) -> bool:
    """A preset name has no slash and no dot (``default``, ``male_01``); anything else is a path."""
    return re.fullmatch(PRESET_NAME_PATTERN, value) is not None


def scaled_emotion_vector(vector: list[float] | None) -> list[float] | None:
    """Scale ``vector`` proportionally so that its weights sum to at most 1."""
    if vector is None:
        return None
    total = math.fsum(vector)
    if total <= 1.0:
        return list(vector)
    return [weight / total for weight in vector]


def _shared_path(value: str, info: ValidationInfo, *, must_exist: bool) -> str:
    policy = policy_from_context(info.context)
    root = policy.shared_root
    try:
        canonical = root.normalize(value)
        if policy.check_disk and root.is_mounted():
            local = root.local_path(canonical)
            if must_exist and not local.is_file():
                raise SharedPathError(f"{canonical} does not exist on the shared volume; upload it first")
    except SharedPathError as exc:
        raise _field_error(str(exc)) from None
    return canonical


def _output_path(value: str, info: ValidationInfo) -> str:
    """An output: under the shared root and the output folder, names the volume allows, no folder."""
    policy = policy_from_context(info.context)
    root = policy.shared_root
    try:
        canonical = root.normalize(value)
        if policy.output_dir:
            check_output_location(canonical, policy.output_folder(), setting="TTS_OUTPUT_DIR")
        check_name_lengths(canonical)
        if policy.check_disk and root.is_mounted():
            check_output_on_volume(canonical, root.local_path(canonical))
    except (SharedPathError, OutputRuleError) as exc:
        raise _field_error(str(exc)) from None
    return canonical


_SPEAKS = "self.workflowChain.exists(t, t == 'indextts.generate_speech')"
# The API server's copy of WorkflowConfig._speech_needs_text below (CEL, camelCase names).
SPEECH_REQUIREMENT_RULES: list[JsonValue] = [
    {
        "rule": f"!{_SPEAKS} || has(self.indexttsConfig)",
        "message": "indexttsConfig is required when workflowChain includes indextts.generate_speech",
    },
    {
        "rule": f"!{_SPEAKS} || !has(self.indexttsConfig) || has(self.indexttsConfig.text)",
        "message": "indexttsConfig.text is required for indextts.generate_speech",
    },
]
# The API server's copy of WorkflowRequest._speech_needs_output: a TTSWorkflow's spec may instead
# stream its audio (``speechStream``, the OpenAI-compatible route's workflows).
_SPEC_SPEAKS = _SPEAKS.replace("self.", "self.workflowConfig.")
SPEC_OUTPUT_RULES: list[JsonValue] = [
    {
        "rule": f"!{_SPEC_SPEAKS} || !has(self.workflowConfig.indexttsConfig) || "
        "has(self.workflowConfig.indexttsConfig.outputPath) || has(self.speechStream)",
        "message": "workflowConfig.indexttsConfig.outputPath is required for indextts.generate_speech",
    },
]


class WorkflowConfig(ApiModel):
    """``workflow_config``: the chain of tasks and the synthesis parameters."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": SPEECH_REQUIREMENT_RULES})

    workflow_chain: list[TaskName] = Field(
        min_length=1,
        max_length=len(TaskName),
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Tasks to run, in order; each at most once.",
    )
    indextts_config: IndexTTSConfig | None = Field(
        default=None, description="Synthesis parameters; required for indextts.generate_speech."
    )

    @field_validator("workflow_chain")
    @classmethod
    def _each_task_once(cls, chain: list[TaskName]) -> list[TaskName]:
        repeated = sorted({task.value for task in chain if chain.count(task) > 1})
        if repeated:
            raise _field_error(f"lists {', '.join(repeated)} more than once; name each task at most once")
        return chain

    @model_validator(mode="after")
    def _speech_needs_text(self) -> WorkflowConfig:
        if TaskName.GENERATE_SPEECH not in self.workflow_chain:
            return self
        config = self.indextts_config
        if config is None:
            raise _required_here(
                "indextts_config", "is required when the chain includes indextts.generate_speech"
            )
        if config.text is None:
            raise _required_here("indextts_config.text", "is required for indextts.generate_speech")
        return self

    @property
    def speaks(self) -> bool:
        return TaskName.GENERATE_SPEECH in self.workflow_chain


class WorkflowRequest(ApiModel):
    """The body of ``POST /v1/workflows``."""

    video_path: str | None = Field(
        default=None,
        max_length=MAX_PATH_LENGTH,
        strict=True,
        description="Accepted and kept for compatibility with existing workflow API clients; not used.",
    )
    workflow_config: WorkflowConfig

    @property
    def needs_output_path(self) -> bool:
        """A speech stage writes its WAV to ``output_path``: required here, optional where the audio
        is streamed instead (a TTSWorkflow's ``speechStream``)."""
        return True

    @model_validator(mode="after")
    def _speech_needs_output(self) -> WorkflowRequest:
        config = self.workflow_config.indextts_config
        lacks_output = config is not None and config.output_path is None
        if self.workflow_config.speaks and lacks_output and self.needs_output_path:
            raise _required_here(
                "workflow_config.indextts_config.output_path", "is required for indextts.generate_speech"
            )
        return self
