"""Reading a clip someone sent: any container and codec FFmpeg knows (PyAV), to mono 16-bit samples.

Decoding stops as soon as more than ``max_seconds`` have come out, so a small file that expands to
hours of audio costs no more than the limit.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
import av.error
import numpy as np
import numpy.typing as npt

# Clips at a higher rate are brought down to this one: nothing in speech needs more.
MAX_CLIP_SAMPLE_RATE = 48_000


class UndecodableAudioError(ValueError):
    """The bytes are not audio FFmpeg can read; the message says what was found."""


class ClipTooLongError(ValueError):
    """More than the limit came out before the end of the clip."""


@dataclass(frozen=True)
class DecodedClip:
    samples: npt.NDArray[np.int16]
    sample_rate: int
    codec: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_clip(data: bytes, *, max_seconds: float) -> DecodedClip:
    """The clip's first audio stream as mono 16-bit samples at its own rate (at most 48 kHz)."""
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise UndecodableAudioError(f"not an audio file that can be read ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            raise UndecodableAudioError("the file holds no audio stream")
        stream = container.streams.audio[0]
        rate = min(stream.rate or MAX_CLIP_SAMPLE_RATE, MAX_CLIP_SAMPLE_RATE)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        limit = int(max_seconds * rate)
        pieces: list[npt.NDArray[np.int16]] = []
        taken = 0
        try:
            for frame in container.decode(stream):
                for piece in resampler.resample(frame):
                    samples = piece.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    pieces.append(samples)
                    taken += len(samples)
                if taken > limit:
                    raise ClipTooLongError(f"the clip is longer than {max_seconds:g} s")
            for piece in resampler.resample(None):
                pieces.append(piece.to_ndarray().reshape(-1).astype(np.int16, copy=False))
        except av.error.FFmpegError as exc:
            raise UndecodableAudioError(f"the audio cannot be decoded ({_reason(exc)})") from None
        codec = stream.codec_context.name
    samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int16)
    if len(samples) > limit:
        raise ClipTooLongError(f"the clip is longer than {max_seconds:g} s")
    return DecodedClip(samples=samples, sample_rate=rate, codec=codec)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__
