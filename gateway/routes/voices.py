"""The voice library, OpenAI-compatible paths: ``GET /v1/audio/voices`` lists the voices (``default``,
the engine's own; the presets; the uploaded ones), ``POST /v1/audio/voices`` uploads one,
``DELETE /v1/audio/voices/{name}`` removes one, ``GET /v1/audio/voices/{name}/sample`` returns a
voice's reference clip.

An upload is checked before anything is kept (a name that is free and follows the rules, a clip that
decodes to 1 to 30 s), its clip stored on the shared volume under its content's hash, then its record
created; two clients racing for one name get one 201 and one 409, and neither overwrites the other.
"""

from __future__ import annotations

import asyncio
import errno
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from gateway.app_state import Opened, Policy
from gateway.openai_errors import OpenAIError
from gateway.openai_speech import ENGINE_VOICE
from gateway.routes.openai import EVERY_FAILURE, failure
from tts_api.shared_paths import SharedPathError
from tts_api.voices import (
    MAX_CLIP_SECONDS,
    MIN_CLIP_SECONDS,
    VOICE_NAME_PATTERN,
    VOICE_NAME_RULE,
    VoiceRecord,
    VoiceSpec,
    is_voice_name,
)
from voice_library.clips import ClipError, accept_clip, store_clip
from voice_library.library import LibraryVoice, VoiceLibrary
from voice_library.store import VoiceExistsError, VoiceLibraryUnavailableError

router = APIRouter()

# The form's text fields besides ``name`` and ``file``, each to a spec field.
TEXT_FIELDS = ("display_name", "description", "language", "gender", "emotion_text", "emotion_alpha")
MAX_FORM_FIELDS = 16


class Voice(BaseModel):
    name: str
    display_name: str
    description: str = ""
    language: str = ""
    gender: str = ""
    source: Literal["preset", "library", "engine"]
    sample_url: str | None
    sha256: str | None = None
    duration_seconds: float | None = None
    emotion_text: str | None = None
    emotion_alpha: float | None = None

    @classmethod
    def of(cls, voice: LibraryVoice) -> Voice:
        return cls(
            name=voice.name,
            display_name=voice.display_name,
            description=voice.description,
            language=voice.language,
            gender=voice.gender,
            source=voice.source,
            sample_url=f"/v1/audio/voices/{voice.name}/sample",
            sha256=voice.sha256,
            duration_seconds=voice.duration_seconds,
            emotion_text=voice.emotion_text,
            emotion_alpha=voice.emotion_alpha,
        )


ENGINE = Voice(
    name=ENGINE_VOICE,
    display_name="The engine's own voice",
    description="espeak-ng's voice, or IndexTTS2's configured default voice",
    source="engine",
    sample_url=None,
)


class VoiceList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Voice]


class VoiceDeleted(BaseModel):
    id: str
    object: Literal["voice"] = "voice"
    deleted: bool


def unavailable(exc: VoiceLibraryUnavailableError) -> OpenAIError:
    return OpenAIError(503, str(exc), code="voices_unavailable")


async def voices_of(library: VoiceLibrary) -> list[LibraryVoice]:
    try:
        return await library.voices()
    except VoiceLibraryUnavailableError as exc:
        raise unavailable(exc) from None


async def voice_of(library: VoiceLibrary, name: str) -> LibraryVoice | None:
    try:
        return await library.find(name)
    except VoiceLibraryUnavailableError as exc:
        raise unavailable(exc) from None


@router.get(
    "/v1/audio/voices",
    summary="The voices speech may be made in",
    response_model=VoiceList,
    responses=EVERY_FAILURE,
)
async def list_voices(opened: Opened) -> VoiceList:
    voices = [Voice.of(voice) for voice in await voices_of(opened.library())]
    if ENGINE_VOICE not in {voice.name for voice in voices}:
        voices.insert(0, ENGINE)
    return VoiceList(data=voices)


UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {
                        "name": {"type": "string", "pattern": VOICE_NAME_PATTERN},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"{MIN_CLIP_SECONDS:g} to {MAX_CLIP_SECONDS:g} s of the voice, "
                            "in any format FFmpeg reads (WAV, FLAC, MP3, Ogg, M4A)",
                        },
                        "display_name": {"type": "string"},
                        "description": {"type": "string"},
                        "language": {"type": "string"},
                        "gender": {"type": "string"},
                        "emotion_text": {
                            "type": "string",
                            "description": "Default instructions for speech in this voice",
                        },
                        "emotion_alpha": {"type": "number", "minimum": 0, "maximum": 1},
                    },
                }
            }
        },
    }
}


@router.post(
    "/v1/audio/voices",
    summary="Add a voice: a name and a reference clip",
    status_code=201,
    response_model=Voice,
    responses={
        400: failure("a form field is missing or wrong, or the clip is not 1 to 30 s of audio"),
        409: failure("voice_exists: the name is taken (a preset or another voice)"),
        **EVERY_FAILURE,
    },
    openapi_extra=UPLOAD_FORM,
)
async def upload_voice(request: Request, opened: Opened, policy: Policy) -> Voice:
    fields, data = await read_upload(request)
    name = fields.pop("name")
    library = opened.library()
    if name == ENGINE_VOICE or await voice_of(library, name) is not None:  # a preset's name included
        raise name_taken(name)
    try:
        clip = await asyncio.to_thread(accept_clip, data)
    except ClipError as exc:
        raise OpenAIError(400, f"file: {exc}", param="file", code="invalid_audio") from None
    root = policy.shared_root
    if not root.is_mounted():
        raise OpenAIError(503, "the shared volume is not mounted here", code="voices_unavailable")
    try:
        spec = VoiceSpec.model_validate(
            {**fields, "audio": clip.path, "sha256": clip.sha256, "duration_seconds": clip.seconds}
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise OpenAIError(400, f"{param}: {first['msg']}", param=param) from None
    try:
        await asyncio.to_thread(store_clip, root, clip)
    except SharedPathError as exc:
        raise OpenAIError(500, f"the clip cannot be stored: {exc}", code="storage_error") from None
    except OSError as exc:
        status = 507 if exc.errno == errno.ENOSPC else 500
        raise OpenAIError(
            status, f"the clip cannot be stored on the shared volume: {exc.strerror}", code="storage_error"
        ) from None
    record = VoiceRecord(name=name, spec=spec, created_at=datetime.now(UTC))
    try:
        await library.store.create(record)
    except VoiceExistsError:
        raise name_taken(name) from None
    except VoiceLibraryUnavailableError as exc:
        raise unavailable(exc) from None
    return Voice.of(LibraryVoice.of_record(record))


def name_taken(name: str) -> OpenAIError:
    return OpenAIError(
        409, f"name: a voice {name!r} exists already; pick another name", param="name", code="voice_exists"
    )


async def read_upload(request: Request) -> tuple[dict[str, Any], bytes]:
    """The form's text fields (``name`` checked) and the clip's bytes; a 400 naming what is wrong."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise OpenAIError(
            400, "send the voice as multipart/form-data with the fields name and file", param="file"
        )
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except MultiPartException as exc:
        raise OpenAIError(400, f"the form cannot be read: {exc.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise OpenAIError(400, "file: is required (the reference clip, as a file)", param="file")
        name = form.get("name")
        if not isinstance(name, str) or not name:
            raise OpenAIError(400, "name: is required", param="name")
        if not is_voice_name(name):
            raise OpenAIError(400, f"name: {name!r} is not a voice name: use {VOICE_NAME_RULE}", param="name")
        unknown = sorted(set(form.keys()) - {"name", "file", *TEXT_FIELDS})
        if unknown:
            raise OpenAIError(400, f"{unknown[0]}: is not a field of this form; remove it", param=unknown[0])
        fields: dict[str, Any] = {"name": name}
        for key in TEXT_FIELDS:
            value = form.get(key)
            if isinstance(value, str) and value.strip():
                fields[key] = value.strip()
        return fields, await upload.read()
    finally:
        await form.close()


@router.delete(
    "/v1/audio/voices/{name}",
    summary="Remove an uploaded voice",
    response_model=VoiceDeleted,
    responses={
        404: failure("voice_not_found: no such voice"),
        409: failure("voice_is_preset: a preset is removed from the presets file, not here"),
        **EVERY_FAILURE,
    },
)
async def delete_voice(name: str, opened: Opened) -> VoiceDeleted:
    library = opened.library()
    if name in library.presets():
        raise OpenAIError(
            409,
            f"{name!r} is a voice preset: remove it from the presets file instead",
            param="name",
            code="voice_is_preset",
        )
    try:
        deleted = await library.store.delete(name)
    except VoiceLibraryUnavailableError as exc:
        raise unavailable(exc) from None
    if not deleted:
        raise OpenAIError(404, not_found(name), param="name", code="voice_not_found")
    return VoiceDeleted(id=name, deleted=True)


def not_found(name: str) -> str:
    if name == ENGINE_VOICE:
        return "the engine's own voice has no reference clip"
    return f"no voice {name!r}: GET /v1/audio/voices lists them"


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
async def voice_sample(name: str, opened: Opened, policy: Policy) -> FileResponse:
    voice = await voice_of(opened.library(), name)
    if voice is None:
        raise OpenAIError(404, not_found(name), param="name", code="voice_not_found")
    root = policy.shared_root
    try:
        path = root.local_path(voice.audio)
    except SharedPathError as exc:
        raise OpenAIError(500, f"voice {name!r}: {exc}", code="voice_unreadable") from None
    if not root.is_mounted() or not path.is_file():
        raise OpenAIError(
            404,
            f"voice {name!r}: its clip {voice.audio} is not on the shared volume here",
            param="name",
            code="voice_not_found",
        )
    return FileResponse(path, media_type="audio/wav", filename=f"{name}.wav")
