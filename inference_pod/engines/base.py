"""The protocol every speech engine implements, and the data that crosses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from tts_api.registry import CacheUse, ModelState
from tts_api.results import Capabilities, ModelInfo, SegmentTiming

# Called by an engine after each segment with (segments done, segments total). The worker's callback
# raises :class:`JobCancelledError` when the job was cancelled, which stops the engine between segments.
ProgressCallback = Callable[[int, int], None]
# Called by an engine with each piece of audio as it is made, in order, with its sample rate (the
# pieces together are the outcome's samples), so that a streamed request hears it at once.
AudioCallback = Callable[["npt.NDArray[np.int16]", int], None]


class JobCancelledError(Exception):
    """The job in hand was cancelled; raised from the progress callback between segments."""


@dataclass(frozen=True)
class SynthesisRequest:
    """One synthesis, with every path already resolved to a checked local file."""

    text: str
    reference_audio: Path | None = None
    emotion_reference: Path | None = None
    emotion_alpha: float = 0.65
    emotion_vector: list[float] | None = None  # already scaled to sum <= 1
    emotion_text: str | None = None
    use_random: bool = False
    max_text_tokens_per_segment: int = 120
    speed: float = 1.0  # within the engine's native_speeds (the worker changes the tempo of the rest)
    language: str | None = None  # ISO 639-1 code the request names; None: the engine detects or ignores it


@dataclass
class SynthesisOutcome:
    """Mono int16 samples, their rate, and what the engine could not honour."""

    samples: npt.NDArray[np.int16]
    sample_rate: int
    warnings: list[str] = field(default_factory=list)
    segments: list[SegmentTiming] = field(default_factory=list)  # each segment's text and time span

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class EngineDescription:
    """What ``get_model_info`` reports, apart from the state, which changes."""

    model_type: str
    model_version: str
    device: str
    capabilities: Capabilities
    model_path: str | None = None


def segment_timing(text: str, start: int, length: int, rate: int) -> SegmentTiming:
    """A segment of ``length`` samples from sample ``start``, at ``rate``, in seconds."""
    return SegmentTiming(
        text=text.strip(), start=round(start / rate, 3), end=round((start + length) / rate, 3)
    )


class Engine(Protocol):
    """Load once; then synthesize many times, one call at a time."""

    name: str
    # The speeds the engine makes itself (its own rate or duration control); (1.0, 1.0) for none.
    native_speeds: tuple[float, float]

    @property
    def state(self) -> ModelState: ...

    @property
    def description(self) -> EngineDescription: ...

    def load(self) -> None:
        """Load the model; sets ``state`` to ready, or to error and raises."""

    def caches(self) -> dict[str, CacheUse]:
        """The engine's bounded caches by name (none for an engine that keeps nothing per voice)."""
        ...

    def synthesize(
        self, request: SynthesisRequest, progress: ProgressCallback, audio: AudioCallback | None = None
    ) -> SynthesisOutcome:
        """Speak ``request``; raise :class:`tts_api.errors.TTSError` with the API's error code on failure.
        ``audio``, when given, receives each piece as soon as it is made."""
        ...


def model_info(engine: Engine, *, full: bool) -> ModelInfo:
    """The API's ``model_info``: short in a speech result, with path, status and capabilities in full."""
    described = engine.description
    info = ModelInfo(
        model_type=described.model_type, model_version=described.model_version, device=described.device
    )
    if full:
        info = info.model_copy(
            update={
                "model_path": described.model_path,
                "status": engine.state.value,
                "capabilities": described.capabilities,
            }
        )
    return info


def native_speed(engine: Engine, speed: float) -> float:
    """The part of ``speed`` the engine makes itself; the worker changes the tempo by the rest."""
    low, high = engine.native_speeds
    return min(max(speed, low), high)
