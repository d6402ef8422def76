"""Emotion as prosody, for engines that cannot render emotion otherwise (espeak).

Each emotion of the API's vector moves speaking rate, pitch, volume and pitch range; the
vector's weights, times ``emotion_alpha``, blend those moves. ``emotion_text`` is read for emotion
words (Chinese or English) and becomes a vector the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tts_api.constants import EMOTION_NAMES


@dataclass(frozen=True)
class Prosody:
    """espeak-ng's units: rate in words per minute, pitch and range 0-100, volume 0-200."""

    rate: int = 175
    pitch: int = 50
    volume: int = 100
    pitch_range: int = 50


NEUTRAL = Prosody()

# (rate, pitch, volume, range) moves at full weight and alpha 1.
EMOTION_MOVES: dict[str, tuple[float, float, float, float]] = {
    "happy": (25, 15, 10, 20),
    "angry": (30, 5, 50, 25),
    "sad": (-45, -15, -30, -25),
    "afraid": (35, 20, -10, 15),
    "disgusted": (-20, -10, 10, -10),
    "melancholic": (-35, -12, -25, -20),
    "surprised": (20, 25, 20, 30),
    "calm": (-15, -5, -10, -15),
}
assert set(EMOTION_MOVES) == set(EMOTION_NAMES)  # noqa: S101 (a definition-time invariant)

EMOTION_WORDS: dict[str, tuple[str, ...]] = {
    "happy": ("开心", "高兴", "快乐", "愉快", "喜", "happy", "joy", "cheerful"),
    "angry": ("生气", "愤怒", "怒", "angry", "furious"),
    "sad": ("伤心", "难过", "悲伤", "哀", "sad", "sorrow"),
    "afraid": ("害怕", "恐惧", "惧", "afraid", "scared", "fear"),
    "disgusted": ("厌恶", "恶心", "disgust"),
    "melancholic": ("低落", "忧郁", "沮丧", "melancholy", "melancholic", "gloomy", "depressed"),
    "surprised": ("惊喜", "惊讶", "吃惊", "surprise", "amazed"),
    "calm": ("平静", "冷静", "平和", "calm", "peaceful", "relaxed"),
}


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


def prosody_for(vector: list[float] | None, alpha: float) -> Prosody:
    """Blend the emotions' moves by weight times ``alpha``; neutral when there is no vector."""
    if not vector:
        return NEUTRAL
    moves = [
        math.fsum(
            alpha * weight * EMOTION_MOVES[name][axis]
            for name, weight in zip(EMOTION_NAMES, vector, strict=True)
        )
        for axis in range(4)
    ]
    return Prosody(
        rate=_clamp(NEUTRAL.rate + moves[0], 80, 450),
        pitch=_clamp(NEUTRAL.pitch + moves[1], 0, 100),
        volume=_clamp(NEUTRAL.volume + moves[2], 0, 200),
        pitch_range=_clamp(NEUTRAL.pitch_range + moves[3], 0, 100),
    )


def vector_from_text(text: str) -> list[float] | None:
    """An emotion vector from the emotion words in ``text``, equal weights summing to 1; None if none."""
    lowered = text.lower()
    found = [any(word in lowered for word in EMOTION_WORDS[name]) for name in EMOTION_NAMES]
    count = sum(found)
    if count == 0:
        return None
    return [1.0 / count if hit else 0.0 for hit in found]
