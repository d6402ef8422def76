"""The real IndexTTS-2.5 code (``indextts25-inference``) on a small random-weight checkpoint, on CPU.

The checkpoint is built once per session by :mod:`tests.inference_pod.checkpoint_builder25` with the
package's own classes; the engine loads it through ``indextts25.infer_v2_5.IndexTTS2`` as production does.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference_pod.engines.base import JobCancelledError, SynthesisOutcome, SynthesisRequest, native_speed
from inference_pod.engines.factory import build_engine, plan_slots
from inference_pod.engines.indextts25 import (
    EMOTION_TEXT_WARNING,
    IndexTTS25Engine,
    detect_language,
    duration_factor,
)
from inference_pod.settings import WorkerSettings
from tests.inference_pod.conftest import Bus, WorkerStarter, speech_job, write_voice
from tts_api.errors import ErrorCode, TTSError
from tts_api.nats_names import audio_subject
from tts_api.policy import ValidationPolicy
from tts_api.registry import ModelState
from tts_api.results import SpeechResult
from tts_api.speech_stream import AudioFormat, SpeechStream

pytestmark = pytest.mark.slow

ENGLISH = "Hello there. This is a test, of the speech."
CHINESE = "你好，这是一个测试。今天天气真好，我们去公园散步吧。"


@pytest.fixture(scope="session")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("voices25")
    return {
        "a": write_voice(folder / "a.wav", seconds=1.5),
        "b": write_voice(folder / "b.wav", seconds=2.0),
        "short": write_voice(folder / "short.wav", seconds=0.2),
    }


@pytest.fixture(scope="session")
def engine(checkpoint25: Path) -> IndexTTS25Engine:
    engine = IndexTTS25Engine(
        checkpoint25,
        device="cpu",
        # Random GPT weights never emit the stop token: keep generation short.
        max_mel_tokens=12,
        num_beams=1,
        # NeMo's English grammars take half a minute to compile; one test turns it on for Chinese.
        text_normalization=False,
        nemo_cache_dir=checkpoint25.parent / "nemo_cache",
    )
    began = time.perf_counter()
    engine.load()
    print(f"IndexTTS-2.5 loaded in {time.perf_counter() - began:.1f} s")
    return engine


def speak(
    engine: IndexTTS25Engine, request: SynthesisRequest
) -> tuple[SynthesisOutcome, list[np.ndarray], list[tuple[str, int]]]:
    pieces: list[np.ndarray] = []
    events: list[tuple[str, int]] = []

    def audio(samples: np.ndarray, rate: int) -> None:
        assert rate == 22_050
        pieces.append(samples)
        events.append(("audio", len(samples)))

    outcome = engine.synthesize(request, lambda done, total: events.append(("progress", done)), audio)
    return outcome, pieces, events


def test_the_engine_loads_and_describes_itself(engine: IndexTTS25Engine, checkpoint25: Path) -> None:
    assert engine.state is ModelState.READY
    described = engine.description
    assert (described.model_type, described.model_version, described.device) == (
        "IndexTTS-2.5",
        "0.2.0",
        "cpu",
    )
    assert described.model_path == str(checkpoint25)
    assert described.capabilities.languages == ["es", "en", "zh", "ja", "ar"]


@pytest.mark.parametrize(("text", "language"), [(ENGLISH, "en"), (CHINESE, "zh")])
def test_speech_streams_segment_by_segment_with_captions(
    engine: IndexTTS25Engine, voices: dict[str, Path], text: str, language: str
) -> None:
    request = SynthesisRequest(text=text, reference_audio=voices["a"], max_text_tokens_per_segment=20)
    outcome, pieces, events = speak(engine, request)
    assert outcome.sample_rate == 22_050
    assert outcome.samples.dtype == np.int16
    assert np.array_equal(np.concatenate(pieces), outcome.samples)
    assert len(outcome.segments) >= 2
    assert all(segment.text for segment in outcome.segments)
    starts = [segment.start for segment in outcome.segments]
    assert starts == sorted(starts)
    assert starts[0] == 0.0
    assert all(a.end <= b.start for a, b in zip(outcome.segments, outcome.segments[1:], strict=False))
    assert outcome.segments[-1].end == pytest.approx(outcome.duration, abs=0.002)
    # The first segment's audio is handed on before the second segment's progress is reported.
    assert events.index(("audio", len(pieces[0]))) < events.index(("progress", 2))
    if language == "en":
        assert "hello" in outcome.segments[0].text
    else:
        assert any(character in outcome.segments[0].text for character in "你好")


def test_detect_language_by_script() -> None:
    assert detect_language("Hello, world.") == "en"
    assert detect_language("¿Cómo estás? Mañana.") == "es"
    assert detect_language("你好，世界") == "zh"
    assert detect_language("こんにちは、世界") == "ja"  # kana with Han: Japanese
    assert detect_language("مرحبا بالعالم") == "ar"


def test_an_explicit_language_is_used_and_an_unknown_one_refused(
    engine: IndexTTS25Engine, voices: dict[str, Path]
) -> None:
    assert engine.language_of(SynthesisRequest(text=ENGLISH, language="es")) == "es"
    assert engine.language_of(SynthesisRequest(text=ENGLISH)) == "en"
    with pytest.raises(TTSError) as caught:
        engine.synthesize(
            SynthesisRequest(text=ENGLISH, reference_audio=voices["a"], language="fr"), lambda d, t: None
        )
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.field == "language"
    assert "es, en, zh, ja, ar" in caught.value.message


def test_speed_is_the_models_duration_control_within_its_range(engine: IndexTTS25Engine) -> None:
    low, high = engine.native_speeds
    assert low == 1.0
    assert high == pytest.approx(1 / 0.78, abs=1e-3)
    assert duration_factor(1.0) == 1.0
    assert duration_factor(1.25) == pytest.approx(0.8)
    assert duration_factor(4.0) == 0.78  # saturates
    assert native_speed(engine, 2.0) == high  # the worker changes the tempo of the rest
    arguments = engine.arguments(SynthesisRequest(text=ENGLISH, speed=1.25), Path("v.wav"), "en")
    assert arguments["duration_factor"] == pytest.approx(0.8)


def test_a_faster_speed_makes_shorter_speech(engine: IndexTTS25Engine, voices: dict[str, Path]) -> None:
    normal, _, _ = speak(engine, SynthesisRequest(text="Hello there.", reference_audio=voices["a"]))
    fast, _, _ = speak(engine, SynthesisRequest(text="Hello there.", reference_audio=voices["a"], speed=1.25))
    assert len(fast.samples) < len(normal.samples)


def test_emotion_vector_and_reference_are_accepted_and_emotion_text_warned(
    engine: IndexTTS25Engine, voices: dict[str, Path]
) -> None:
    vector = [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]
    by_vector, _, _ = speak(
        engine,
        SynthesisRequest(text="Hello.", reference_audio=voices["a"], emotion_vector=vector, use_random=True),
    )
    by_reference, _, _ = speak(
        engine,
        SynthesisRequest(
            text="Hello.", reference_audio=voices["a"], emotion_reference=voices["b"], emotion_alpha=0.4
        ),
    )
    assert by_vector.warnings == []
    assert by_reference.warnings == []
    assert len(by_vector.samples) > 0
    assert len(by_reference.samples) > 0
    worded, _, _ = speak(
        engine, SynthesisRequest(text="Hello.", reference_audio=voices["a"], emotion_text="happy")
    )
    assert worded.warnings == [EMOTION_TEXT_WARNING]
    arguments = engine.arguments(
        SynthesisRequest(text="x", emotion_reference=voices["b"], emotion_alpha=0.4, emotion_vector=vector),
        voices["a"],
        "en",
    )
    assert (arguments["emo_audio_prompt"], arguments["emo_alpha"], arguments["emo_vector"]) == (
        str(voices["b"]),
        0.4,
        vector,
    )


def test_caches_are_reported_and_bounded(
    engine: IndexTTS25Engine, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("many-voices25")
    many = [write_voice(folder / f"v{n}.wav", seconds=0.6 + 0.01 * n) for n in range(10)]
    before = engine.caches()["speaker"]
    for voice in [*many, many[-1]]:
        engine.synthesize(SynthesisRequest(text="Hi.", reference_audio=voice), lambda d, t: None)
    caches = engine.caches()
    assert set(caches) == {"speaker", "emotion", "emotion_vector"}
    for use in caches.values():
        assert use.entries <= use.capacity == 8
    assert caches["speaker"].entries == 8  # ten voices through eight places
    assert caches["speaker"].misses == before.misses + 10
    assert caches["speaker"].hits == before.hits + 1


def test_a_cancel_stops_between_segments(engine: IndexTTS25Engine, voices: dict[str, Path]) -> None:
    seen: list[tuple[int, int]] = []

    def cancel_after_first(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 1:
            raise JobCancelledError("operator")

    with pytest.raises(JobCancelledError):
        engine.synthesize(
            SynthesisRequest(text=ENGLISH, reference_audio=voices["a"], max_text_tokens_per_segment=20),
            cancel_after_first,
        )
    assert seen[0][1] >= 3
    assert seen == [(0, seen[0][1]), (1, seen[0][1])]


@pytest.mark.parametrize(
    ("reference", "words"),
    [("short", "shorter than"), (None, "reference_audio")],
    ids=["too-short reference", "no reference and no default voice"],
)
def test_bad_references_fail_with_invalid_input(
    engine: IndexTTS25Engine, voices: dict[str, Path], reference: str | None, words: str
) -> None:
    request = SynthesisRequest(text=ENGLISH, reference_audio=voices[reference] if reference else None)
    with pytest.raises(TTSError) as caught:
        engine.synthesize(request, lambda d, t: None)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert words in caught.value.message


def test_text_normalization_spells_out_numbers(engine: IndexTTS25Engine, voices: dict[str, Path]) -> None:
    engine.text_normalization = True
    try:
        outcome, _, _ = speak(engine, SynthesisRequest(text="我有25个苹果。", reference_audio=voices["a"]))
    finally:
        engine.text_normalization = False
    assert "二十五" in "".join(segment.text for segment in outcome.segments)
    assert list((engine.nemo_cache_dir or Path("/nonexistent")).glob("zh-*.pkl"))  # cached where told


@pytest.mark.parametrize("missing", ["codec.pth", "hf_cache/bigvgan/bigvgan_generator.pt", "gpt.pth"])
def test_a_missing_checkpoint_file_is_model_not_ready_naming_it(
    checkpoint25: Path, tmp_path: Path, missing: str
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(checkpoint25, copy, symlinks=True, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "hf_cache" / "w2v-bert-2.0" / "model.safetensors").symlink_to(
        checkpoint25 / "hf_cache" / "w2v-bert-2.0" / "model.safetensors"
    )
    (copy / missing).unlink()
    engine = IndexTTS25Engine(copy, device="cpu")
    with pytest.raises(TTSError) as caught:
        engine.load()
    assert caught.value.code is ErrorCode.MODEL_NOT_READY
    assert missing in caught.value.message
    assert engine.state is ModelState.ERROR


def test_the_factory_builds_it_and_plans_one_slot_per_gpu(checkpoint25: Path) -> None:
    settings = WorkerSettings(engine="indextts25", checkpoint_dir=checkpoint25, attn_backend="sdpa")
    built = build_engine(settings)
    assert isinstance(built, IndexTTS25Engine)
    assert built.checkpoint_dir == checkpoint25
    assert [slot.device for slot in plan_slots("indextts25", 2, None, None)] == ["cuda:0", "cuda:1"]


async def test_a_streamed_job_through_nats_on_the_indextts25_engine(
    bus: Bus, start_worker: WorkerStarter, policy: ValidationPolicy, share: Path, engine: IndexTTS25Engine
) -> None:
    write_voice(share / "voices" / "speaker.wav")
    worker = await start_worker(engine)
    job = speech_job("i25", policy, text=ENGLISH, reference_audio="/share/voices/speaker.wav", language="en")
    await bus.publish(job)
    result = SpeechResult.model_validate((await bus.completed(job.job_id, seconds=60)).output)
    assert result.model_info.model_type == "IndexTTS-2.5"
    assert result.sample_rate == 22050
    assert (share / "workflows" / "output" / "i25.wav").stat().st_size > 44
    entry = worker.registry_entry()
    assert set(entry.caches) == {"speaker", "emotion", "emotion_vector"}

    # Streamed: the chunks reach the audio subject as they are made, the last one marked.
    chunks: list[tuple[dict[str, str], bytes]] = []

    async def collect(message: Any) -> None:
        chunks.append((dict(message.headers or {}), bytes(message.data)))

    subscription = await bus.client.subscribe(audio_subject("stream25-0123456789"), cb=collect)
    streamed = speech_job("i25s", policy, text=ENGLISH, reference_audio="/share/voices/speaker.wav")
    streamed = streamed.model_copy(
        update={"stream": SpeechStream(id="stream25-0123456789", format=AudioFormat.PCM)}
    )
    await bus.publish(streamed)
    await bus.completed(streamed.job_id, seconds=60)
    deadline = time.monotonic() + 10
    while not any("Tts-End" in headers for headers, _ in chunks):
        assert time.monotonic() < deadline, f"no last chunk; got {len(chunks)}"
        await asyncio.sleep(0.05)
    await subscription.unsubscribe()
    assert len(chunks) >= 2
    assert sum(len(data) for _, data in chunks) > 22050 * 2 * 0.5  # PCM16: more than half a second
