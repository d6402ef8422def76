"""The voices a speech request may name, OpenAI-compatible paths: ``GET /v1/audio/voices`` lists them
(the voice presets, and ``default``, the engine's own voice) and ``GET /v1/audio/voices/{name}/sample``
returns a preset's reference clip from the shared volume."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel

from gateway.app_state import Policy, Settings
from gateway.openai_errors import OpenAIError
from gateway.openai_speech import ENGINE_VOICE
from gateway.routes.openai import EVERY_FAILURE, failure
from gateway.settings import GatewaySettings
from tts_api.shared_paths import SharedPathError
from voice_library.presets import PresetError, Presets, load_presets

router = APIRouter()


class Voice(BaseModel):
    name: str
    display_name: str
    description: str = ""
    language: str = ""
    gender: str = ""
    source: Literal["preset", "engine"]
    sample_url: str | None


class VoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Voice]


def presets_of(settings: GatewaySettings) -> Presets:
    try:
        return load_presets(settings.presets_file)
    except PresetError as exc:
        raise OpenAIError(
            503, f"the voice presets cannot be read: {exc}", code="voices_unavailable"
        ) from None


@router.get(
    "/v1/audio/voices",
    summary="The voices speech may be made in",
    response_model=VoiceList,
    responses=EVERY_FAILURE,
)
async def list_voices(settings: Settings) -> VoiceList:
    voices = [
        Voice(
            name=name,
            display_name=entry.name,
            description=entry.description,
            language=entry.language,
            gender=entry.gender,
            source="preset",
            sample_url=f"/v1/audio/voices/{name}/sample",
        )
        for name, entry in sorted(presets_of(settings).items())
    ]
    if ENGINE_VOICE not in {voice.name for voice in voices}:
        engine = Voice(
            name=ENGINE_VOICE,
            display_name="The engine's own voice",
            description="espeak-ng's voice, or IndexTTS2's configured default voice",
            source="engine",
            sample_url=None,
        )
        voices.insert(0, engine)
    return VoiceList(data=voices)


@router.get(
    "/v1/audio/voices/{name}/sample",
    summary="A voice's reference clip",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The clip",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        },
        404: failure("voice_not_found: no such voice, or it has no clip"),
        **EVERY_FAILURE,
    },
)
async def voice_sample(name: str, settings: Settings, policy: Policy) -> FileResponse:
    entry = presets_of(settings).get(name)
    if entry is None:
        detail = (
            "the engine's own voice has no reference clip"
            if name == ENGINE_VOICE
            else f"no voice {name!r}: GET /v1/audio/voices lists them"
        )
        raise OpenAIError(404, detail, param="name", code="voice_not_found")
    root = policy.shared_root
    try:
        path = root.local_path(entry.reference_audio)
    except SharedPathError as exc:
        raise OpenAIError(500, f"voice {name!r}: {exc}", code="voice_unreadable") from None
    if not root.is_mounted() or not path.is_file():
        raise OpenAIError(
            404,
            f"voice {name!r}: its clip {entry.reference_audio} is not on the shared volume here",
            param="name",
            code="voice_not_found",
        )
    return FileResponse(path, media_type="audio/wav", filename=f"{name}.wav")
