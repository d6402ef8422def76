"""``POST /v1/audio/speech``'s body as OpenAI defines it, read into a TTSWorkflow spec whose speech is
streamed back (``spec.speechStream``). Every refusal is an :class:`OpenAIError` naming the field."""

from __future__ import annotations

import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.openai_errors import OpenAIError
from tts_api.constants import TaskName
from tts_api.policy import ValidationPolicy
from tts_api.request import IndexTTSConfig, WorkflowConfig
from tts_api.resource import TTSWorkflowSpec
from tts_api.speech_stream import MAX_SPEED, MIN_SPEED, AudioFormat, SpeechStream
from voice_library.library import LibraryVoice, VoiceLibrary
from voice_library.store import VoiceLibraryUnavailableError

MAX_INPUT_CHARACTERS = 4096  # as OpenAI
# OpenAI's own voices: a client may name one, and configuration maps it to a library voice.
OPENAI_VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "coral",
        "echo",
        "fable",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
        "marin",
        "cedar",
    }
)
# The request's fields that become the synthesis's, by the synthesis's name.
SPEECH_FIELDS = {"text": "input", "emotion_text": "instructions", "reference_audio": "voice"}
# The voice that speaks with the engine's own default voice (no reference audio).
ENGINE_VOICE = "default"


class VoiceId(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)


class SpeechRequest(BaseModel):
    """The body of ``POST /v1/audio/speech``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARACTERS)
    voice: str | VoiceId
    response_format: AudioFormat = AudioFormat.MP3
    speed: float = Field(default=1.0, ge=MIN_SPEED, le=MAX_SPEED, allow_inf_nan=False)
    instructions: str | None = Field(default=None, max_length=MAX_INPUT_CHARACTERS)
    stream_format: Literal["audio", "sse"] = "audio"

    @property
    def voice_name(self) -> str:
        return self.voice if isinstance(self.voice, str) else self.voice.id


def speech_request_body() -> dict[str, Any]:
    """``openapi_extra`` for ``POST /v1/audio/speech``: the body is read by the route itself (so that
    every refusal is OpenAI's error body), and described here (the schema among the components)."""
    schema = {"$ref": f"#/components/schemas/{SpeechRequest.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def read_speech_request(body: Any) -> SpeechRequest:
    if not isinstance(body, dict):
        raise OpenAIError(400, "the request body must be a JSON object with model, input and voice")
    try:
        return SpeechRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = ".".join(str(part) for part in first["loc"] if not isinstance(part, int)) or None
        top = str(first["loc"][0]) if first["loc"] else None
        raise OpenAIError(400, f"{param}: {_explain(first, top)}", param=top) from None


def _explain(error: Any, field: str | None) -> str:
    if error["type"] == "missing":
        return "is required"
    if error["type"] == "extra_forbidden":
        return "is not a parameter of this endpoint; remove it"
    if field == "input" and error["type"] == "string_too_long":
        return f"is longer than {MAX_INPUT_CHARACTERS} characters; split the text into several requests"
    if field == "input" and error["type"] == "string_too_short":
        return "must not be empty"
    if field == "speed":
        return f"must be a number from {MIN_SPEED} to {MAX_SPEED}"
    if field == "response_format":
        return "must be one of " + ", ".join(f.value for f in AudioFormat)
    if field == "stream_format":
        return "must be audio or sse"
    return str(error["msg"])


async def speech_voice(name: str, library: VoiceLibrary, mapped: dict[str, str]) -> LibraryVoice | None:
    """The library voice to clone (None: the engine's own voice), or a 400 naming the voices."""
    target = mapped.get(name, name)
    if target == ENGINE_VOICE:
        return None
    try:
        voice = await library.find(target)
        if voice is not None:
            return voice
        known = [voice.name for voice in await library.voices()]
    except VoiceLibraryUnavailableError as exc:
        raise OpenAIError(503, str(exc), code="voices_unavailable") from None
    voices = ", ".join(sorted({ENGINE_VOICE, *known, *mapped}))
    if name in OPENAI_VOICES and name not in mapped:
        hint = (
            f"{name!r} is one of OpenAI's voices and is not mapped to a voice here: use one of {voices}, "
            f"or map it (TTS_GATEWAY_OPENAI_VOICES={name}=<voice>)"
        )
    else:
        hint = f"no voice {target!r}: use one of {voices}"
    raise OpenAIError(400, f"voice: {hint}", param="voice", code="voice_not_found")


def new_stream_id() -> str:
    """32 URL-safe characters: the stream's subject token, unguessable by other clients."""
    return secrets.token_urlsafe(24)


def speech_spec(
    request: SpeechRequest,
    policy: ValidationPolicy,
    voice: LibraryVoice | None,
    *,
    timeout_seconds: int,
    model: str | None = None,
) -> TTSWorkflowSpec:
    """The workflow for a speech request in ``voice``: one generate_speech stage whose audio is
    streamed; the voice's default emotion applies when the request gives no instructions."""
    instructions = request.instructions.strip() if request.instructions else None
    fields: dict[str, Any] = {"text": request.input, "emotion_text": instructions or None, "model": model}
    if voice is not None:
        fields["reference_audio"] = voice.name
        fields["emotion_text"] = fields["emotion_text"] or voice.emotion_text
        if voice.emotion_alpha is not None:
            fields["emotion_alpha"] = voice.emotion_alpha
        policy = policy.knowing_voices({voice.name})
    try:
        config = IndexTTSConfig.model_validate(fields, context={"policy": policy})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = SPEECH_FIELDS.get(str(first["loc"][0]) if first["loc"] else "", "input")
        raise OpenAIError(
            400, f"{param}: {first['msg'].removeprefix('Value error, ')}", param=param
        ) from None
    stream = SpeechStream(id=new_stream_id(), format=request.response_format, speed=request.speed)
    workflow = WorkflowConfig.model_construct(
        workflow_chain=[TaskName.GENERATE_SPEECH], indextts_config=config
    )
    return TTSWorkflowSpec.model_construct(
        video_path=None,
        workflow_config=workflow,
        timeout_seconds=timeout_seconds,
        ttl_seconds_after_finished=None,
        speech_stream=stream,
    )
