"""Encoding speech as it is made: :class:`StreamEncoder` takes each piece of samples and gives back
the bytes of the stream that are ready, so the first audio leaves before the last is synthesized.

Every format is 24 kHz mono (OpenAI documents ``pcm`` as 24 kHz 16-bit little-endian). The container
writes into a sink that cannot seek, so the muxers write streamable forms: WAV with open lengths
(0xFFFFFFFF), FLAC without the final STREAMINFO rewrite, Ogg pages and ADTS frames as they fill.
A speed other than 1 changes the tempo with FFmpeg's ``atempo`` filter, which keeps the pitch.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import av.filter
import numpy as np
import numpy.typing as npt

from tts_api.speech_stream import MAX_SPEED, MIN_SPEED, OUTPUT_SAMPLE_RATE, AudioFormat


@dataclass(frozen=True)
class Muxing:
    container: str
    codec: str
    options: dict[str, str]


MUXING = {
    AudioFormat.MP3: Muxing("mp3", "libmp3lame", {}),
    # An Ogg page every 20 ms instead of every second: the audio leaves as it is encoded.
    AudioFormat.OPUS: Muxing("ogg", "libopus", {"page_duration": "20000"}),
    AudioFormat.AAC: Muxing("adts", "aac", {}),
    AudioFormat.FLAC: Muxing("flac", "flac", {}),
    AudioFormat.WAV: Muxing("wav", "pcm_s16le", {}),
}
# atempo changes the tempo by 0.5 to 2.0 per instance in older FFmpeg builds: chain them.
ATEMPO_STEP_RANGE = (0.5, 2.0)


class _Sink:
    """Where the container writes: a buffer drained after each piece (no seek, so nothing is rewritten)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def drain(self) -> bytes:
        taken = bytes(self.data)
        self.data.clear()
        return taken


def tempo_steps(speed: float) -> list[float]:
    """Factors within atempo's range whose product is ``speed``."""
    low, high = ATEMPO_STEP_RANGE
    steps: list[float] = []
    while speed > high or speed < low:
        step = high if speed > high else low
        steps.append(step)
        speed /= step
    return [*steps, speed]


class StreamEncoder:
    """One stream: ``encode(piece)`` for each piece of samples, then ``finish()`` once."""

    def __init__(self, audio_format: AudioFormat, input_rate: int, speed: float = 1.0) -> None:
        if input_rate <= 0:
            raise ValueError(f"input_rate must be positive, not {input_rate}")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise ValueError(f"speed must be from {MIN_SPEED} to {MAX_SPEED}, not {speed}")
        self.audio_format = audio_format
        self.input_rate = input_rate
        self._pts = 0
        self._finished = False
        self._graph = self._tempo_graph(speed) if speed != 1.0 else None
        self._sink = _Sink()
        self._container: av.container.OutputContainer | None = None
        self._stream: av.AudioStream | None = None
        encoder_format = "s16"
        if audio_format is not AudioFormat.PCM:
            muxing = MUXING[audio_format]
            self._container = av.open(
                self._sink,
                mode="w",
                format=muxing.container,
                options={"flush_packets": "1", **muxing.options},
            )
            stream = self._container.add_stream(muxing.codec, rate=OUTPUT_SAMPLE_RATE, layout="mono")
            assert isinstance(stream, av.AudioStream)  # noqa: S101 (an audio codec makes an audio stream)
            self._stream = stream
            codec_format = stream.codec_context.format
            encoder_format = codec_format.name if codec_format is not None else "s16"
        self._resampler = av.AudioResampler(format=encoder_format, layout="mono", rate=OUTPUT_SAMPLE_RATE)

    def _tempo_graph(self, speed: float) -> av.filter.Graph:
        graph = av.filter.Graph()
        source = graph.add_abuffer(format="s16", sample_rate=self.input_rate, layout="mono")
        last = source
        for step in tempo_steps(speed):
            node = graph.add("atempo", str(step))
            last.link_to(node)
            last = node
        sink = graph.add("abuffersink")
        last.link_to(sink)
        graph.configure()
        return graph

    def encode(self, samples: npt.NDArray[np.float32] | npt.NDArray[np.int16]) -> bytes:
        """The bytes ready after this piece (1-D, float in [-1, 1] or int16, at ``input_rate``)."""
        if self._finished:
            raise ValueError("the stream was finished; start a new StreamEncoder")
        array = np.asarray(samples)
        if array.ndim != 1:
            raise ValueError(f"samples must be one-dimensional (mono), not of shape {array.shape}")
        if array.dtype != np.int16:
            array = (np.clip(array.astype(np.float64), -1.0, 1.0) * 32767).astype(np.int16)
        if array.size == 0:
            return b""
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(array).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = self.input_rate
        frame.pts = self._pts
        self._pts += array.size
        return self._write(self._tempo(frame))

    def finish(self) -> bytes:
        """The rest of the stream: the filter's, the resampler's and the encoder's tails, the trailer."""
        if self._finished:
            raise ValueError("finish() was called already")
        self._finished = True
        frames = self._tempo(None) if self._graph is not None else []
        data = self._write(frames, flush=True)
        if self._container is not None:
            self._container.close()
        return data + self._sink.drain()

    def _tempo(self, frame: av.AudioFrame | None) -> list[av.AudioFrame]:
        if self._graph is None:
            return [frame] if frame is not None else []
        self._graph.push(frame)
        frames: list[av.AudioFrame] = []
        while True:
            try:
                frames.append(self._graph.pull())  # type: ignore[arg-type]
            except (av.BlockingIOError, av.EOFError):
                return frames

    def _write(self, frames: list[av.AudioFrame], *, flush: bool = False) -> bytes:
        resampled: list[av.AudioFrame] = []
        for frame in frames:
            resampled.extend(self._resampler.resample(frame))
        if flush:
            resampled.extend(self._resampler.resample(None))
        if self._stream is None or self._container is None:
            return b"".join(bytes(frame.to_ndarray().astype("<i2").tobytes()) for frame in resampled)
        for frame in resampled:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        if flush:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        return self._sink.drain()


def encode_whole(
    audio_format: AudioFormat,
    samples: npt.NDArray[np.float32] | npt.NDArray[np.int16],
    input_rate: int,
    speed: float = 1.0,
) -> bytes:
    """A whole file at once."""
    encoder = StreamEncoder(audio_format, input_rate, speed)
    return encoder.encode(samples) + encoder.finish()
