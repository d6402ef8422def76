"""An uploaded reference clip: checked (decodable, 1 to 30 s), made a mono 16-bit WAV, and stored on the
shared volume under its content's SHA-256, written once and never overwritten.

Two uploads of the same audio under different names store one file; a clip is never rewritten in
place (a new one is written beside it and renamed into place), so a worker reading it sees it whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile

from audio_formats.decoding import ClipTooLongError, UndecodableAudioError, decode_clip
from tts_api.shared_paths import SharedRoot
from tts_api.voices import MAX_CLIP_SECONDS, MIN_CLIP_SECONDS, clip_path


class ClipError(ValueError):
    """The clip cannot be a voice; the message says why and what to send instead."""


@dataclass(frozen=True)
class Clip:
    wav: bytes
    sha256: str
    seconds: float
    sample_rate: int

    @property
    def path(self) -> str:
        """Where it lives, relative to the shared root."""
        return clip_path(self.sha256)


def accept_clip(data: bytes) -> Clip:
    """The clip in ``data`` as it will be stored, or :class:`ClipError`."""
    if not data:
        raise ClipError("the file is empty: send a recording of 1 to 30 seconds")
    try:
        decoded = decode_clip(data, max_seconds=MAX_CLIP_SECONDS)
    except ClipTooLongError:
        raise ClipError(
            f"the clip is longer than {MAX_CLIP_SECONDS:g} s: send {MIN_CLIP_SECONDS:g} to "
            f"{MAX_CLIP_SECONDS:g} seconds of the voice"
        ) from None
    except UndecodableAudioError as exc:
        raise ClipError(f"{exc}: send a WAV, FLAC, MP3, Ogg or M4A recording") from None
    if decoded.seconds < MIN_CLIP_SECONDS:
        raise ClipError(
            f"the clip is {decoded.seconds:.2f} s long: send {MIN_CLIP_SECONDS:g} to "
            f"{MAX_CLIP_SECONDS:g} seconds of the voice"
        )
    if not decoded.samples.any():
        raise ClipError("the clip is silent: send a recording of the voice")
    buffer = io.BytesIO()
    soundfile.write(buffer, decoded.samples, decoded.sample_rate, format="WAV", subtype="PCM_16")
    wav = buffer.getvalue()
    return Clip(
        wav=wav,
        sha256=hashlib.sha256(wav).hexdigest(),
        seconds=round(decoded.seconds, 3),
        sample_rate=decoded.sample_rate,
    )


def store_clip(root: SharedRoot, clip: Clip) -> Path:
    """Put the clip on the shared volume (once: a clip already there is left as it is)."""
    target = root.local_path(clip.path)
    if target.is_file() and target.stat().st_size == len(clip.wav):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-", suffix=".wav")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(clip.wav)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target
