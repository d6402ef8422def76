"""The real IndexTTS2 code (``indextts2-inference``) on a small random-weight checkpoint, on CPU, offline.

The checkpoint is built once per session by :mod:`tests.inference_pod.checkpoint_builder` with the
package's own classes; the engine loads it through ``IndexTTS2(...)`` as production does.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference_pod.engines.base import JobCancelledError, SynthesisRequest
from inference_pod.engines.indextts2 import IndexTTS2Engine, classify_failure, infer_arguments
from tests.inference_pod.checkpoint_builder import Checkpoint
from tests.inference_pod.conftest import Bus, WorkerStarter, speech_job, write_voice
from tts_api.errors import ErrorCode, TTSError
from tts_api.policy import ValidationPolicy
from tts_api.registry import ModelState
from tts_api.results import SpeechResult

pytestmark = pytest.mark.slow

TEXT = "你好，这是一个测试。今天天气真好，我们去公园散步吧。"


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voices")
    return {
        "a": write_voice(folder / "a.wav", seconds=1.5),
        "a_copy": Path(shutil.copy(folder / "a.wav", folder / "a_copy.wav")),
        "b": write_voice(folder / "b.wav", seconds=2.0),
        "short": write_voice(folder / "short.wav", seconds=0.2),
    }


class Calls:
    """Records the keyword arguments of each call and passes it through to the real function."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.function(*args, **kwargs)


@pytest.fixture(scope="session")
def engine(checkpoint: Checkpoint) -> IndexTTS2Engine:
    engine = IndexTTS2Engine(
        checkpoint.model_dir,
        hf_home=checkpoint.hf_home,
        device="cpu",
        # Random GPT weights never emit the stop token: keep generation short.
        max_mel_tokens=20,
        num_beams=1,
        cache_size=4,
        language="zh",
        # As in a pod with a read-only root filesystem: grammars compiled into a writable folder.
        nemo_cache_dir=checkpoint.model_dir.parent / "nemo_cache",
    )
    began = time.perf_counter()
    engine.load()
    print(f"IndexTTS2 loaded in {time.perf_counter() - began:.1f} s")
    return engine


def spy(engine: IndexTTS2Engine, name: str) -> Calls:
    calls = Calls(getattr(engine.model, name))
    setattr(engine.model, name, calls)
    return calls


def unspy(engine: IndexTTS2Engine, calls: Calls, name: str) -> None:
    setattr(engine.model, name, calls.function)


def test_the_engine_loads_the_checkpoint_and_reports_it(
    engine: IndexTTS2Engine, checkpoint: Checkpoint
) -> None:
    assert engine.state is ModelState.READY
    described = engine.description
    assert (described.model_type, described.model_version, described.device) == ("IndexTTS2", "2.0", "cpu")
    assert described.model_path == str(checkpoint.model_dir)
    assert described.capabilities.voice_cloning is True
    assert list((checkpoint.model_dir.parent / "nemo_cache").glob("*.far"))  # zh grammars compiled there


def test_every_request_field_reaches_infer(engine: IndexTTS2Engine, voices: dict[str, Path]) -> None:
    request = SynthesisRequest(
        text=TEXT,
        reference_audio=voices["a"],
        emotion_reference=voices["b"],
        emotion_alpha=0.4,
        emotion_vector=[0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        emotion_text="开心",
        use_random=True,
        max_text_tokens_per_segment=30,
    )
    infer = spy(engine, "infer")
    try:
        began = time.perf_counter()
        outcome = engine.synthesize(request, lambda done, total: None)
        print(f"IndexTTS2 infer took {time.perf_counter() - began:.2f} s")
    finally:
        unspy(engine, infer, "infer")

    [call] = infer.calls
    expected = {
        "spk_audio_prompt": str(voices["a"]),
        "text": TEXT,
        "output_path": None,
        "emo_audio_prompt": str(voices["b"]),
        "emo_alpha": 0.4,
        "emo_vector": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5],
        "use_emo_text": True,
        "emo_text": "开心",
        "use_random": True,
        "max_text_tokens_per_segment": 30,
    }
    assert {key: call[key] for key in expected} == expected
    assert call["max_mel_tokens"] == 20
    assert outcome.sample_rate == 22050
    assert outcome.samples.dtype == np.int16
    assert outcome.duration > 0.1
    assert infer_arguments(request, voices["a"]) == expected


def test_the_speaker_cache_hits_on_a_second_call_with_the_same_audio_content(
    engine: IndexTTS2Engine, voices: dict[str, Path]
) -> None:
    embeddings = spy(engine, "get_emb")  # the w2v-bert pass of every speaker or emotion conditioning
    try:
        engine.synthesize(SynthesisRequest(text=TEXT, reference_audio=voices["a"]), lambda d, t: None)
        after_first = len(embeddings.calls)
        hits = engine.speaker_cache.hits
        # Same bytes under another name: the package's path-keyed cache would miss; ours hits.
        engine.synthesize(SynthesisRequest(text=TEXT, reference_audio=voices["a_copy"]), lambda d, t: None)
        assert len(embeddings.calls) == after_first
        assert engine.speaker_cache.hits == hits + 1
        engine.synthesize(SynthesisRequest(text=TEXT, reference_audio=voices["b"]), lambda d, t: None)
        assert len(embeddings.calls) == after_first + 2  # new voice: speaker and emotion conditioning
    finally:
        unspy(engine, embeddings, "get_emb")


def test_progress_is_reported_per_segment_and_a_cancel_stops_between_segments(
    engine: IndexTTS2Engine, voices: dict[str, Path]
) -> None:
    seen: list[tuple[int, int]] = []
    engine.synthesize(
        SynthesisRequest(text=TEXT, reference_audio=voices["a"], max_text_tokens_per_segment=20),
        lambda done, total: seen.append((done, total)),
    )
    total = seen[0][1]
    assert total >= 2
    assert seen == [(done, total) for done in range(total + 1)]

    def cancel_after_first(done: int, total: int) -> None:
        if done >= 1:
            raise JobCancelledError("operator")

    with pytest.raises(JobCancelledError):
        engine.synthesize(
            SynthesisRequest(text=TEXT, reference_audio=voices["a"], max_text_tokens_per_segment=20),
            cancel_after_first,
        )


def test_each_segment_is_handed_on_as_it_is_made_and_the_pieces_are_the_whole(
    engine: IndexTTS2Engine, voices: dict[str, Path]
) -> None:
    events: list[tuple[str, int]] = []
    pieces: list[np.ndarray] = []

    def audio(samples: np.ndarray, rate: int) -> None:
        assert rate == 22_050
        pieces.append(samples)
        events.append(("audio", len(samples)))

    outcome = engine.synthesize(
        SynthesisRequest(text=TEXT, reference_audio=voices["a"], max_text_tokens_per_segment=20),
        lambda done, total: events.append(("progress", done)),
        audio,
    )
    assert np.array_equal(np.concatenate(pieces), outcome.samples)
    # Each segment's audio comes before its progress, the first before the second segment is made.
    first_audio = events.index(("audio", len(pieces[0])))
    assert first_audio < events.index(("progress", 1)) < events.index(("progress", 2))
    # The captions: each segment's text (as the tokenizer writes it) over its own stretch of audio.
    assert len(outcome.segments) == len(pieces[::2]) >= 2
    assert all(segment.text for segment in outcome.segments)
    assert any(character in outcome.segments[0].text for character in "你好测试")
    spoken = [round(len(piece) / 22_050, 3) for piece in pieces[::2]]
    assert [round(s.end - s.start, 3) for s in outcome.segments] == pytest.approx(spoken, abs=0.002)
    assert outcome.segments[-1].end == pytest.approx(outcome.duration, abs=0.002)


@pytest.mark.parametrize(
    ("reference", "code", "words"),
    [
        ("short", ErrorCode.INVALID_INPUT, "shorter than"),
        (None, ErrorCode.INVALID_INPUT, "reference_audio"),
    ],
    ids=["too-short reference", "no reference and no default voice"],
)
def test_bad_references_fail_with_invalid_input(
    engine: IndexTTS2Engine,
    voices: dict[str, Path],
    reference: str | None,
    code: ErrorCode,
    words: str,
) -> None:
    request = SynthesisRequest(text=TEXT, reference_audio=voices[reference] if reference else None)
    with pytest.raises(TTSError) as caught:
        engine.synthesize(request, lambda d, t: None)
    assert caught.value.code is code
    assert words in caught.value.message


def test_loading_failures_have_the_api_error_codes(tmp_path: Path, checkpoint: Checkpoint) -> None:
    missing = IndexTTS2Engine(tmp_path / "nothing-mounted")
    with pytest.raises(TTSError) as caught:
        missing.load()
    assert caught.value.code is ErrorCode.MODEL_NOT_READY
    assert missing.state is ModelState.ERROR

    needs_gpu = IndexTTS2Engine(checkpoint.model_dir, hf_home=checkpoint.hf_home, require_gpu=True)
    with pytest.raises(TTSError) as caught:
        needs_gpu.load()  # this machine has no CUDA device
    assert caught.value.code is ErrorCode.GPU_UNAVAILABLE
    with pytest.raises(TTSError) as caught:
        needs_gpu.synthesize(SynthesisRequest(text=TEXT), lambda d, t: None)
    assert caught.value.code is ErrorCode.MODEL_NOT_READY


class OutOfMemoryError(RuntimeError):
    """Named as torch.cuda.OutOfMemoryError is."""


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), ErrorCode.INSUFFICIENT_MEMORY),
        (RuntimeError("CUDA error: out of memory"), ErrorCode.INSUFFICIENT_MEMORY),
        (ValueError("shapes do not match"), ErrorCode.PROCESSING_ERROR),
    ],
)
def test_failures_map_to_the_api_error_codes(exc: Exception, code: ErrorCode) -> None:
    error = classify_failure(exc)
    assert error.code is code
    if code is ErrorCode.PROCESSING_ERROR:
        assert "shapes do not match" in error.message


async def test_a_job_through_nats_on_the_indextts2_engine(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path, engine: IndexTTS2Engine
) -> None:
    write_voice(share / "voices" / "speaker.wav")
    worker = await start_worker(engine)
    job = speech_job("i2", policy, text=TEXT, reference_audio="/share/voices/speaker.wav", emotion_alpha=0.8)
    await bus.publish(job)
    result = SpeechResult.model_validate((await bus.completed(job.job_id, seconds=60)).output)
    assert result.model_info.model_type == "IndexTTS2"
    assert result.sample_rate == 22050
    assert (share / "workflows" / "output" / "i2.wav").stat().st_size > 44
    # The caches' use and the process's memory: in the registry entry (heartbeats) and in /metrics.
    entry = worker.registry_entry()
    assert set(entry.caches) == {"speaker", "emotion"}
    assert 1 <= entry.caches["speaker"].entries <= entry.caches["speaker"].capacity == 4
    assert entry.resident_memory is not None
    assert entry.resident_memory > 100 * 2**20
    assert entry.gpu_memory_allocated is None  # on CPU
    samples = worker.metrics.registry.get_sample_value
    cache = {"slot": worker.slot, "cache": "speaker"}
    deadline = time.monotonic() + 10
    while samples("tts_worker_cache_capacity", cache) is None:
        assert time.monotonic() < deadline, "the cache gauges never appeared"
        await asyncio.sleep(0.1)
    assert samples("tts_worker_cache_capacity", cache) == 4
    assert (samples("tts_worker_cache_entries", cache) or 0) >= 1
    assert (samples("tts_worker_resident_memory_bytes") or 0) > 100 * 2**20


def test_running_out_of_gpu_memory_inside_infer_is_insufficient_memory(
    engine: IndexTTS2Engine, voices: dict[str, Path]
) -> None:
    real_infer = engine.model.infer

    def out_of_memory(**_: Any) -> Any:
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

    engine.model.infer = out_of_memory
    try:
        with pytest.raises(TTSError) as caught:
            engine.synthesize(SynthesisRequest(text=TEXT, reference_audio=voices["a"]), lambda d, t: None)
    finally:
        engine.model.infer = real_infer
    assert caught.value.code is ErrorCode.INSUFFICIENT_MEMORY
    assert engine.state is ModelState.READY  # the model stays loaded for the next job


@pytest.mark.timeout(900)  # 200 syntheses: about 2 minutes on two cores
def test_memory_levels_off_over_200_requests_in_20_voices(
    engine: IndexTTS2Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every cache is bounded: with more voices than the caches hold, each request evicts one, and the
    worker's resident memory stops growing once the caches are full."""
    from inference_pod.memory import resident_memory_bytes

    folder = tmp_path_factory.mktemp("many-voices")
    voices = [write_voice(folder / f"v{n}.wav", seconds=0.6 + 0.01 * n) for n in range(20)]
    resident: list[int] = []
    for request in range(200):
        voice = voices[request % len(voices)]
        engine.synthesize(SynthesisRequest(text="你好。", reference_audio=voice), lambda d, t: None)
        resident.append(resident_memory_bytes())
        for use in engine.caches().values():
            assert use.entries <= use.capacity == 4
    caches = engine.caches()
    assert caches["speaker"].misses >= 190  # 20 voices through 4 places: almost every request misses
    settled, last = resident[99], max(resident[100:])
    growth_mb = (last - settled) / 2**20
    print(
        f"resident memory: {resident[0] / 2**20:.0f} MB after 1, {settled / 2**20:.0f} MB after 100, "
        f"at most {last / 2**20:.0f} MB over the last 100"
    )
    assert growth_mb < 32, f"resident memory grew {growth_mb:.0f} MB over the last 100 requests"
