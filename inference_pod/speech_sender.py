"""Streamed speech, the worker's side: each piece of audio the engine makes is encoded at once and
sent on the request's own NATS subject (``tts.audio.<id>``), numbered, the last message marked."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from audio_formats.encoding import StreamEncoder
from tts_api.speech_stream import AudioChunk, SpeechStream, split_chunks

SendChunk = Callable[[AudioChunk], None]


class SpeechSender:
    """Encodes one attempt's audio in the stream's format and tempo and sends it, in order."""

    def __init__(self, stream: SpeechStream, attempt: int, send: SendChunk, *, tempo: float = 1.0) -> None:
        self.stream = stream
        self.attempt = attempt
        self.tempo = tempo
        self._send = send
        self._encoder: StreamEncoder | None = None
        self._sequence = 0

    def audio(self, samples: npt.NDArray[np.int16], sample_rate: int) -> None:
        """The engine's next piece (an :data:`~inference_pod.engines.base.AudioCallback`)."""
        if self._encoder is None:
            self._encoder = StreamEncoder(self.stream.format, sample_rate, self.tempo)
        encoded = self._encoder.encode(samples)
        if encoded:
            self._send_bytes(encoded, end=False)

    def finish(self) -> None:
        """The rest of the stream, and the end mark."""
        self._send_bytes(self._encoder.finish() if self._encoder is not None else b"", end=True)

    def _send_bytes(self, data: bytes, *, end: bool) -> None:
        pieces = split_chunks(data)
        for index, piece in enumerate(pieces):
            last = end and index == len(pieces) - 1
            self._send(AudioChunk(attempt=self.attempt, sequence=self._sequence, data=piece, end=last))
            self._sequence += 1
