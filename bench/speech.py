"""Time to first audio on the OpenAI-compatible route: how soon a streamed ``POST /v1/audio/speech``
gives its first bytes, against the time to the whole answer, for a three-sentence input on the local
stack's espeak engine (one sentence per segment; PCM, the format with the least encoder delay).

The goal is that the first audio arrives before the second segment is synthesized. espeak speaks a
sentence in a few milliseconds, too fast to tell one segment from the next by the clock, so the same
is measured on the synthetic engine at 200 ms a segment (``ttfa_ms_p50_synthetic``): there the
first audio must come after about one segment's time, the whole after three.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from bench.local_stack import running_stack
from bench.stats import percentile

THREE_SENTENCES = (
    "The first sentence is spoken on its own. A second sentence follows it closely. "
    "And the third one ends the request."
)


def _one(client: httpx.Client, audio_format: str) -> tuple[float, float, int]:
    """(ms to the first audio byte, ms to the whole body, bytes) of one streamed request."""
    body = {"model": "tts-1", "voice": "default", "input": THREE_SENTENCES, "response_format": audio_format}
    began = time.perf_counter()
    first: float | None = None
    size = 0
    with client.stream("POST", "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            if chunk and first is None:
                first = time.perf_counter()
            size += len(chunk)
    whole = time.perf_counter()
    if first is None:
        raise RuntimeError("a speech request answered 200 with no audio")
    return (first - began) * 1000, (whole - began) * 1000, size


# The synthetic engine's time for the three sentences: 200 ms a segment, as a slow model would take.
SYNTHETIC_SECONDS = 0.6


def measure(work_dir: Path, *, requests: int = 30, warmup: int = 3) -> dict[str, float]:
    with (
        running_stack(work_dir / "espeak", workers=1, service_seconds=0.0, engine="espeak") as stack,
        httpx.Client(base_url=stack.url, timeout=120) as client,
    ):
        for _ in range(warmup):
            _one(client, "pcm")
        timings = [_one(client, "pcm") for _ in range(requests)]
        mp3 = [_one(client, "mp3") for _ in range(max(3, requests // 3))]
    with (
        running_stack(work_dir / "synthetic", workers=1, service_seconds=SYNTHETIC_SECONDS) as stack,
        httpx.Client(base_url=stack.url, timeout=120) as client,
    ):
        _one(client, "pcm")
        slow = [_one(client, "pcm") for _ in range(max(3, requests // 6))]
    first = [t[0] for t in timings]
    whole = [t[1] for t in timings]
    return {
        # A model at 200 ms a segment: the first audio after one segment, the whole after three.
        "ttfa_ms_p50_synthetic": percentile([t[0] for t in slow], 50),
        "speech_whole_ms_p50_synthetic": percentile([t[1] for t in slow], 50),
        "ttfa_ms_p50": percentile(first, 50),
        "ttfa_ms_p99": percentile(first, 99),
        "speech_whole_ms_p50": percentile(whole, 50),
        "speech_whole_ms_p99": percentile(whole, 99),
        "ttfa_ms_p50_mp3": percentile([t[0] for t in mp3], 50),
        "speech_whole_ms_p50_mp3": percentile([t[1] for t in mp3], 50),
        "speech_requests": float(requests),
    }
