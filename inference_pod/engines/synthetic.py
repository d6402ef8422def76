"""A fixed-service-time engine for benchmarks and tests: sleeps, then emits a real short tone.

It honours segments (progress per segment) and the cancel check between them, so it exercises the
worker exactly as a slow model would, without any model.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from inference_pod.engines.base import (
    AudioCallback,
    EngineDescription,
    ProgressCallback,
    SynthesisOutcome,
    SynthesisRequest,
    segment_timing,
)
from inference_pod.engines.segments import split_segments
from tts_api.registry import CacheUse, ModelState
from tts_api.results import Capabilities

SAMPLE_RATE = 22050
SECONDS_PER_SEGMENT = 0.25
TONE_HZ = 440.0


class SyntheticEngine:
    name = "synthetic"
    native_speeds = (1.0, 1.0)

    def __init__(self, delay_seconds: float = 0.5) -> None:
        self.delay_seconds = delay_seconds
        self._state = ModelState.LOADING

    @property
    def state(self) -> ModelState:
        return self._state

    def caches(self) -> dict[str, CacheUse]:
        return {}  # nothing is kept per voice

    @property
    def description(self) -> EngineDescription:
        return EngineDescription(
            model_type="synthetic",
            model_version="1",
            device="cpu",
            capabilities=Capabilities(text_to_speech=True, languages=["zh", "en"]),
        )

    def load(self) -> None:
        self._state = ModelState.READY

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        segments = split_segments(request.text, request.max_text_tokens_per_segment, pack=audio is None) or [
            request.text
        ]
        count = int(SECONDS_PER_SEGMENT * SAMPLE_RATE)
        pieces: list[npt.NDArray[np.int16]] = []
        progress(0, len(segments))
        for done in range(1, len(segments) + 1):
            time.sleep(self.delay_seconds / len(segments))
            start = (done - 1) * count
            tone = 0.2 * np.sin(2 * np.pi * TONE_HZ * np.arange(start, start + count) / SAMPLE_RATE)
            pieces.append((tone * 32767).astype(np.int16))
            if audio is not None:
                audio(pieces[-1], SAMPLE_RATE)
            progress(done, len(segments))
        warnings = ["the synthetic engine emits a tone, not speech"]
        timings = [segment_timing(text, n * count, count, SAMPLE_RATE) for n, text in enumerate(segments)]
        return SynthesisOutcome(
            samples=np.concatenate(pieces), sample_rate=SAMPLE_RATE, warnings=warnings, segments=timings
        )
