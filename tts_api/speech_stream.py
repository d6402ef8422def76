"""Speech streamed to a client of the OpenAI-compatible route: the formats, and the audio messages a
worker sends on a NATS subject of the request's own (the bytes never pass through the API server)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field

from tts_api.request import ApiModel

# OpenAI documents `pcm` as 24 kHz mono 16-bit little-endian; every format is encoded at this rate.
OUTPUT_SAMPLE_RATE = 24_000
MIN_SPEED = 0.25
MAX_SPEED = 4.0


class AudioFormat(StrEnum):
    """``response_format`` of ``POST /v1/audio/speech``."""

    MP3 = "mp3"
    OPUS = "opus"
    AAC = "aac"
    FLAC = "flac"
    WAV = "wav"
    PCM = "pcm"

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self]


CONTENT_TYPES = {
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.AAC: "audio/aac",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.PCM: "audio/pcm",
}


STREAM_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"


class SpeechStream(ApiModel):
    """``spec.speechStream``: the worker sends the audio, encoded as it is synthesized, on
    ``tts.audio.<id>`` (:func:`tts_api.nats_names.audio_subject`) instead of writing a WAV."""

    id: str = Field(
        pattern=STREAM_ID_PATTERN,
        strict=True,
        description="The stream's name on NATS, chosen by its reader (16 to 64 letters, digits, '_', '-').",
    )
    format: AudioFormat = Field(default=AudioFormat.MP3, description="The encoding of the audio sent.")
    speed: float = Field(
        default=1.0,
        ge=MIN_SPEED,
        le=MAX_SPEED,
        strict=True,
        allow_inf_nan=False,
        description=f"Tempo, {MIN_SPEED} to {MAX_SPEED}; the pitch is kept.",
    )


# The headers of the audio messages. A worker sends the chunks of one attempt in order, numbered from
# 0; the last message of an attempt (it may hold bytes too) carries ``Tts-End``.
ATTEMPT_HEADER = "Tts-Attempt"
SEQUENCE_HEADER = "Tts-Seq"
END_HEADER = "Tts-End"
# A NATS message carries at most 1 MiB by default; chunks stay well under it.
MAX_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class AudioChunk:
    """One audio message, as the reader sees it."""

    attempt: int
    sequence: int
    data: bytes
    end: bool

    def headers(self) -> dict[str, str]:
        fields = {ATTEMPT_HEADER: str(self.attempt), SEQUENCE_HEADER: str(self.sequence)}
        if self.end:
            fields[END_HEADER] = "1"
        return fields

    @classmethod
    def read(cls, headers: Mapping[str, str] | None, data: bytes) -> AudioChunk:
        """The chunk a message holds; ValueError when its headers are not an audio chunk's."""
        fields = headers or {}
        try:
            attempt, sequence = int(fields[ATTEMPT_HEADER]), int(fields[SEQUENCE_HEADER])
        except (KeyError, ValueError):
            raise ValueError(f"not an audio chunk: headers {dict(fields)!r}") from None
        return cls(attempt=attempt, sequence=sequence, data=data, end=END_HEADER in fields)


def split_chunks(data: bytes) -> list[bytes]:
    """``data`` in pieces of at most MAX_CHUNK_BYTES (one empty piece for no data)."""
    return [data[start : start + MAX_CHUNK_BYTES] for start in range(0, len(data), MAX_CHUNK_BYTES)] or [b""]
