"""Uploaded clips: decoded by FFmpeg whatever their container, bounded while decoding, made mono 16-bit
WAV and named by their content; stored once, atomically, never over another file."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from audio_formats.decoding import ClipTooLongError, decode_clip
from tts_api.shared_paths import SharedRoot
from tts_api.voices import clip_path
from voice_library.clips import ClipError, accept_clip, store_clip


def tone(seconds: float, rate: int) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def encoded(samples: np.ndarray, rate: int, container: str, codec: str, layout: str = "mono") -> bytes:
    out = io.BytesIO()
    with av.open(out, mode="w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.AudioStream)
        planes = samples.reshape(1, -1) if layout == "mono" else np.stack([samples, samples])
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            muxer.mux(packet)
    return out.getvalue()


@pytest.mark.parametrize(
    ("container", "codec", "rate"),
    [("ogg", "libopus", 48_000), ("mp3", "libmp3lame", 44_100), ("adts", "aac", 24_000)],
)
def test_a_clip_in_any_container_becomes_a_mono_wav_of_its_length(
    container: str, codec: str, rate: int
) -> None:
    data = encoded(tone(2.0, rate), rate, container, codec, layout="stereo")
    clip = accept_clip(data)
    assert clip.seconds == pytest.approx(2.0, abs=0.1)
    samples, stored_rate = soundfile.read(io.BytesIO(clip.wav), dtype="int16")
    assert stored_rate == rate == clip.sample_rate
    assert samples.ndim == 1
    assert np.abs(samples).max() > 5000  # the tone, not silence
    assert clip.sha256 == hashlib.sha256(clip.wav).hexdigest()
    assert clip.path == f"voices/{clip.sha256}.wav"


def test_the_same_audio_gives_the_same_name_and_different_audio_another() -> None:
    one = io.BytesIO()
    soundfile.write(one, tone(2.0, 22_050), 22_050, format="FLAC")
    first, again = accept_clip(one.getvalue()), accept_clip(one.getvalue())
    assert first.sha256 == again.sha256
    other = io.BytesIO()
    soundfile.write(other, tone(2.5, 22_050), 22_050, format="FLAC")
    assert accept_clip(other.getvalue()).sha256 != first.sha256


def test_a_high_rate_is_brought_down_to_48_khz() -> None:
    out = io.BytesIO()
    soundfile.write(out, tone(1.5, 96_000), 96_000, format="WAV")
    clip = accept_clip(out.getvalue())
    assert clip.sample_rate == 48_000
    assert clip.seconds == pytest.approx(1.5, abs=0.01)


def test_decoding_stops_at_the_limit_instead_of_expanding_a_small_file() -> None:
    # Ten minutes of silence in FLAC is a few kilobytes: decoding must not go on to the end.
    out = io.BytesIO()
    soundfile.write(out, np.zeros(600 * 8_000, dtype=np.int16), 8_000, format="FLAC")
    assert len(out.getvalue()) < 200_000
    with pytest.raises(ClipTooLongError):
        decode_clip(out.getvalue(), max_seconds=30)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "empty"),
        (b"RIFF\x00\x00\x00\x00WAVEjunk" * 10, "not an audio file"),
        (b"%PDF-1.4 not audio at all" * 40, "not an audio file"),
    ],
)
def test_what_is_not_audio_is_refused_saying_what_to_send(data: bytes, says: str) -> None:
    with pytest.raises(ClipError, match=says) as raised:
        accept_clip(data)
    assert "send" in str(raised.value)


def test_a_clip_is_stored_once_and_a_damaged_copy_is_replaced_whole(tmp_path: Path) -> None:
    root = SharedRoot(tmp_path, "/share")
    out = io.BytesIO()
    soundfile.write(out, tone(2.0, 16_000), 16_000, format="WAV")
    clip = accept_clip(out.getvalue())
    stored = store_clip(root, clip)
    assert stored == tmp_path / clip_path(clip.sha256)
    assert stored.read_bytes() == clip.wav
    first_inode = stored.stat().st_ino
    assert store_clip(root, clip).stat().st_ino == first_inode  # there already: not written again
    stored.write_bytes(clip.wav[:100])  # a truncated copy
    assert store_clip(root, clip).read_bytes() == clip.wav
    assert [p.name for p in stored.parent.iterdir()] == [stored.name]  # no temporary left behind
    assert oct(stored.stat().st_mode & 0o777) == oct(0o644)


def test_a_clip_is_not_stored_through_a_link_out_of_the_share(tmp_path: Path) -> None:
    share, outside = tmp_path / "share", tmp_path / "outside"
    share.mkdir()
    outside.mkdir()
    os.symlink(outside, share / "voices")
    out = io.BytesIO()
    soundfile.write(out, tone(2.0, 16_000), 16_000, format="WAV")
    with pytest.raises(ValueError, match="outside the shared root"):
        store_clip(SharedRoot(share, "/share"), accept_clip(out.getvalue()))
    assert list(outside.iterdir()) == []
