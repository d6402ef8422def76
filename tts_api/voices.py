"""A library voice: a named reference clip that both APIs may clone, and the rules its fields follow.

The clip lives on the shared volume under a name made of its content's SHA-256
(``voices/<sha256>.wav``), so the same audio uploaded under two names is one file, and a worker's
conditioning cache (keyed by the audio's content hash) serves both. The record is the same in both
modes: a TTSVoice object on a cluster (``spec`` below), an entry of the ``tts_voices`` bucket in local
mode; workers read the bucket (on a cluster the operator keeps it equal to the objects).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from tts_api.constants import API_GROUP, API_GROUP_VERSION
from tts_api.request import DEFAULT_EMOTION_ALPHA, WAV_PATH_PATTERN, ApiModel

VOICE_KIND = "TTSVoice"
VOICE_LIST_KIND = "TTSVoiceList"
VOICE_PLURAL = "ttsvoices"
VOICE_SINGULAR = "ttsvoice"
VOICE_SHORT_NAME = "ttsv"
VOICE_CRD_NAME = f"{VOICE_PLURAL}.{API_GROUP}"

# A voice's name is a Kubernetes object name and a bucket key at once: a DNS label.
VOICE_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
VOICE_NAME_RULE = "1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
VOICE_AUDIO_FOLDER = "voices"

MIN_CLIP_SECONDS = 1.0
MAX_CLIP_SECONDS = 30.0


def is_voice_name(value: str) -> bool:
    return re.fullmatch(VOICE_NAME_PATTERN, value) is not None


def clip_path(sha256: str) -> str:
    """Where a clip with this content hash lives, relative to the shared root."""
    if re.fullmatch(SHA256_PATTERN, sha256) is None:
        raise ValueError(f"not a SHA-256 in hex: {sha256!r}")
    return f"{VOICE_AUDIO_FOLDER}/{sha256}.wav"


class VoiceSpec(ApiModel):
    """A voice's fields: what it sounds like (its clip) and what is shown about it."""

    audio: str = Field(
        min_length=1,
        description="The reference clip: a .wav path under the shared root (voices/<sha256>.wav for an "
        "uploaded one).",
        pattern=WAV_PATH_PATTERN,
    )
    sha256: str | None = Field(
        default=None,
        description="The SHA-256 of the clip as stored; workers cache conditioning by it.",
        pattern=SHA256_PATTERN,
    )
    display_name: str = Field(default="", max_length=200, description="A name to show people.")
    description: str = Field(default="", max_length=1000)
    language: str = Field(default="", max_length=35, description="A language tag, such as zh-CN or en.")
    gender: str = Field(default="", max_length=40)
    duration_seconds: float | None = Field(default=None, ge=0.0, description="The clip's length.")
    emotion_text: str | None = Field(
        default=None,
        max_length=500,
        description="Default emotion description for speech in this voice when a request gives none.",
    )
    emotion_alpha: float = Field(
        default=DEFAULT_EMOTION_ALPHA,
        ge=0.0,
        le=1.0,
        description="Default emotion strength for speech in this voice.",
    )


class VoiceRecord(ApiModel):
    """A voice as the bucket holds it and the gateway shows it: its name, its spec, where it came from."""

    name: str = Field(pattern=VOICE_NAME_PATTERN)
    spec: VoiceSpec
    created_at: datetime | None = None

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> VoiceRecord:
        return cls.model_validate_json(data)


class TTSVoiceMetadata(ApiModel):
    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str | None = None
    creation_timestamp: datetime | None = None


class TTSVoice(ApiModel):
    """The TTSVoice object as the API server holds it."""

    model_config = ConfigDict(extra="ignore")

    api_version: str = API_GROUP_VERSION
    kind: Literal["TTSVoice"] = "TTSVoice"
    metadata: TTSVoiceMetadata
    spec: VoiceSpec

    def record(self) -> VoiceRecord:
        return VoiceRecord(
            name=self.metadata.name, spec=self.spec, created_at=self.metadata.creation_timestamp
        )
