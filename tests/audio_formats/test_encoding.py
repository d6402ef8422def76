"""Speech encoded piece by piece with real FFmpeg encoders (PyAV), decoded back and checked: rate,
length, the tone itself, bytes before the end, the WAV's open header, and tempo changes."""

from __future__ import annotations

import io

import av
import numpy as np
import numpy.typing as npt
import pytest

from audio_formats.encoding import StreamEncoder, encode_whole, tempo_steps
from tts_api.speech_stream import AudioFormat

TONE_HZ = 440.0


def tone(seconds: float, rate: int) -> npt.NDArray[np.float32]:
    return (0.3 * np.sin(2 * np.pi * TONE_HZ * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def decode(data: bytes, audio_format: AudioFormat) -> tuple[npt.NDArray[np.float32], int]:
    if audio_format is AudioFormat.PCM:
        return (np.frombuffer(data, dtype="<i2") / 32768).astype(np.float32), 24_000
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        assert stream.codec_context.channels == 1
        rate = stream.codec_context.sample_rate
    return np.concatenate(frames).astype(np.float32), rate


def dominant_hz(samples: npt.NDArray[np.float32], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def streamed(
    audio_format: AudioFormat, samples: npt.NDArray[np.float32], rate: int, speed: float = 1.0
) -> tuple[list[bytes], bytes]:
    encoder = StreamEncoder(audio_format, rate, speed)
    pieces = np.array_split(samples, 4)
    return [encoder.encode(piece) for piece in pieces], encoder.finish()


# Opus decodes at 48 kHz whatever rate it was encoded at.
DECODED_RATE = {AudioFormat.OPUS: 48_000}


@pytest.mark.parametrize("audio_format", list(AudioFormat))
def test_each_format_decodes_to_the_tone_at_24_khz_with_bytes_before_the_end(
    audio_format: AudioFormat,
) -> None:
    parts, tail = streamed(audio_format, tone(2.0, 22_050), 22_050)
    assert sum(len(part) for part in parts) > 0, "nothing came out before finish()"
    assert parts[0], "the first piece gave no bytes"
    samples, rate = decode(b"".join(parts) + tail, audio_format)
    assert rate == DECODED_RATE.get(audio_format, 24_000)
    assert len(samples) / rate == pytest.approx(2.0, abs=0.08)
    assert dominant_hz(samples, rate) == pytest.approx(TONE_HZ, abs=5)


def test_the_wav_stream_opens_with_open_lengths() -> None:
    parts, _ = streamed(AudioFormat.WAV, tone(1.0, 24_000), 24_000)
    header = parts[0][:44]
    assert header[:4] == b"RIFF"
    assert header[8:12] == b"WAVE"
    assert header[4:8] == b"\xff\xff\xff\xff"  # the length is not known when the first bytes go out


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
@pytest.mark.parametrize("audio_format", [AudioFormat.PCM, AudioFormat.MP3])
def test_speed_changes_the_length_and_keeps_the_pitch(audio_format: AudioFormat, speed: float) -> None:
    parts, tail = streamed(audio_format, tone(2.0, 22_050), 22_050, speed)
    samples, rate = decode(b"".join(parts) + tail, audio_format)
    assert len(samples) / rate == pytest.approx(2.0 / speed, rel=0.05, abs=0.08)
    assert dominant_hz(samples, rate) == pytest.approx(TONE_HZ, abs=5)


def test_tempo_steps_stay_within_atempos_range() -> None:
    for speed in (0.25, 0.3, 0.5, 1.5, 2.0, 3.0, 4.0):
        steps = tempo_steps(speed)
        assert all(0.5 <= step <= 2.0 for step in steps)
        assert float(np.prod(steps)) == pytest.approx(speed)


@pytest.mark.parametrize("rate", [16_000, 24_000])
def test_other_input_rates_and_int16_input(rate: int) -> None:
    samples = (tone(1.0, rate) * 32767).astype(np.int16)
    decoded, decoded_rate = decode(encode_whole(AudioFormat.FLAC, samples, rate), AudioFormat.FLAC)
    assert decoded_rate == 24_000
    assert len(decoded) / decoded_rate == pytest.approx(1.0, abs=0.02)
    assert dominant_hz(decoded, decoded_rate) == pytest.approx(TONE_HZ, abs=5)


def test_bad_arguments_are_refused_saying_what_to_change() -> None:
    with pytest.raises(ValueError, match=r"speed must be from 0\.25 to 4\.0"):
        StreamEncoder(AudioFormat.MP3, 24_000, 4.5)
    with pytest.raises(ValueError, match="input_rate must be positive"):
        StreamEncoder(AudioFormat.MP3, 0)
    encoder = StreamEncoder(AudioFormat.PCM, 24_000)
    with pytest.raises(ValueError, match="one-dimensional"):
        encoder.encode(np.zeros((2, 10), dtype=np.float32))
    encoder.finish()
    with pytest.raises(ValueError, match="finished"):
        encoder.encode(np.zeros(10, dtype=np.float32))
