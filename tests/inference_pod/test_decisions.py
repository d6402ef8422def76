"""The worker's pure decisions: segments, prosody, what to do after each ending, presets, engine choice."""

from __future__ import annotations

import pytest

from inference_pod.engines.factory import Slot, SlotError, engine_name, plan_slots
from inference_pod.engines.prosody import NEUTRAL, Prosody, prosody_for, vector_from_text
from inference_pod.engines.segments import count_tokens, split_segments
from inference_pod.outcomes import (
    Action,
    CancelReason,
    Outcome,
    after_cancel,
    after_failure,
    too_many_deliveries,
)
from inference_pod.settings import WorkerSettings
from tts_api.errors import ErrorCode, TTSError
from tts_api.registry import registry_key
from voice_library.presets import PresetError, parse_presets


@pytest.mark.parametrize(
    ("text", "max_tokens", "segments"),
    [
        ("你好。", 20, ["你好。"]),
        ("一二三四五六七八九十。", 4, ["一二三四", "五六七八", "九十。"]),
        ("Hello there. How are you?", 20, ["Hello there. How are you?"]),
        ("Hello there. How are you?", 2, ["Hello there.", "How are", "you?"]),
        ("第一句话，很长很长。第二句。", 6, ["第一句话，", "很长很长。", "第二句。"]),
        ("  \n ", 20, []),
    ],
)
def test_text_is_split_at_sentences_then_clauses_then_tokens(
    text: str, max_tokens: int, segments: list[str]
) -> None:
    assert split_segments(text, max_tokens) == segments
    assert all(count_tokens(segment) <= max_tokens for segment in segments)


def test_emotion_becomes_prosody() -> None:
    assert prosody_for(None, 0.65) == NEUTRAL
    assert prosody_for([0.0] * 8, 1.0) == NEUTRAL
    happy = prosody_for([1, 0, 0, 0, 0, 0, 0, 0], 1.0)
    sad = prosody_for([0, 0, 1, 0, 0, 0, 0, 0], 1.0)
    assert happy.rate > NEUTRAL.rate > sad.rate
    assert happy.pitch > NEUTRAL.pitch > sad.pitch
    angry = prosody_for([0, 1, 0, 0, 0, 0, 0, 0], 1.0)
    assert angry.volume > NEUTRAL.volume
    half = prosody_for([1, 0, 0, 0, 0, 0, 0, 0], 0.5)
    assert NEUTRAL.rate < half.rate < happy.rate  # alpha scales the move
    mixed = prosody_for([0.5, 0, 0, 0, 0, 0, 0, 0.5], 1.0)  # half happy, half calm
    assert mixed == Prosody(rate=180, pitch=55, volume=100, pitch_range=52)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("请用开心的语气说", [1, 0, 0, 0, 0, 0, 0, 0]),
        ("sad and angry", [0, 0.5, 0.5, 0, 0, 0, 0, 0]),
        ("平静地说", [0, 0, 0, 0, 0, 0, 0, 1]),
        ("读一下", None),
    ],
)
def test_emotion_words_become_a_vector(text: str, expected: list[float] | None) -> None:
    assert vector_from_text(text) == expected


MEMORY = TTSError(ErrorCode.INSUFFICIENT_MEMORY, "CUDA out of memory")
BAD_INPUT = TTSError(ErrorCode.INVALID_INPUT, "reference_audio: too short")


@pytest.mark.parametrize(
    ("error", "delivered", "action", "outcome", "delay"),
    [
        (BAD_INPUT, 1, Action.ACK, Outcome.FAILED, 0.0),  # the user's fault: never retried
        (MEMORY, 1, Action.NAK, Outcome.RETRIED, 2.0),
        (MEMORY, 2, Action.NAK, Outcome.RETRIED, 4.0),  # backoff doubles
        (MEMORY, 3, Action.ACK, Outcome.FAILED, 0.0),  # the last delivery: fail for good
    ],
)
def test_after_a_failure(
    error: TTSError, delivered: int, action: Action, outcome: Outcome, delay: float
) -> None:
    decided = after_failure(error, delivered=delivered, max_deliveries=3, retry_delay=2.0)
    assert (decided.action, decided.outcome, decided.delay) == (action, outcome, delay)
    if action is Action.ACK:
        assert decided.error is not None
        assert decided.error.code is error.code


@pytest.mark.parametrize(
    ("reason", "action", "code"),
    [
        (CancelReason.OPERATOR, Action.ACK, ErrorCode.PROCESSING_ERROR),
        (CancelReason.DEADLINE, Action.ACK, ErrorCode.TASK_TIMEOUT),
        (CancelReason.SHUTDOWN, Action.NAK, None),  # handed back, reported by the next worker
    ],
)
def test_after_a_cancel(reason: CancelReason, action: Action, code: ErrorCode | None) -> None:
    decided = after_cancel(reason, "why")
    assert decided.action is action
    assert (decided.error.code if decided.error else None) is code


def test_a_job_delivered_too_often_is_failed_without_running() -> None:
    assert too_many_deliveries(3, 3) is None
    error = too_many_deliveries(4, 3)
    assert error is not None
    assert error.code is ErrorCode.PROCESSING_ERROR


def test_presets_parse_and_name_what_is_wrong() -> None:
    presets = parse_presets(
        "default: {name: Default Voice, language: zh-CN, gender: female, reference_audio: /share/v/d.wav}\n"
        "male_01: {name: Male Voice 01, reference_audio: /share/v/m.wav}\n"
    )
    assert sorted(presets) == ["default", "male_01"]
    assert presets["default"].public().model_dump() == {
        "name": "Default Voice",
        "description": "",
        "language": "zh-CN",
        "gender": "female",
    }
    assert parse_presets("") == {}
    for text, words in [
        ("a/b: {name: x, reference_audio: /share/x.wav}", "preset name"),
        ("x: {name: x}", "reference_audio"),
        ("x: {name: x, reference_audio: other}", "not another preset"),
        ("[1, 2]", "must map"),
        ("x: [", "not valid YAML"),
    ]:
        with pytest.raises(PresetError, match=words):
            parse_presets(text)


@pytest.mark.parametrize(
    ("engine", "checkpoint", "expected"),
    [
        ("auto", None, "espeak"),
        ("auto", "/models/indextts", "indextts2"),
        ("synthetic", "/models", "synthetic"),
    ],
)
def test_the_engine_is_indextts2_only_where_a_checkpoint_is_mounted(
    engine: str, checkpoint: str | None, expected: str
) -> None:
    settings = WorkerSettings.model_validate({"engine": engine, "checkpoint_dir": checkpoint})
    assert engine_name(settings) == expected


@pytest.mark.parametrize(
    ("engine", "gpus", "slots", "name", "planned"),
    [
        ("indextts2", 2, None, None, [Slot("gpu0", 0), Slot("gpu1", 1)]),  # one job per GPU
        ("indextts2", 2, 1, None, [Slot("gpu0", 0)]),
        ("indextts2", 0, None, None, [Slot("cpu0")]),  # IndexTTS2 on CPU
        ("espeak", 2, None, None, [Slot("cpu0")]),  # a CPU engine ignores GPUs
        ("synthetic", 0, 3, None, [Slot("cpu0"), Slot("cpu1"), Slot("cpu2")]),
        ("espeak", 0, None, "bench", [Slot("bench")]),
    ],
)
def test_slots_per_process(
    engine: str, gpus: int, slots: int | None, name: str | None, planned: list[Slot]
) -> None:
    assert plan_slots(engine, gpus, slots, name) == planned


def test_never_more_slots_than_gpus() -> None:
    with pytest.raises(SlotError, match="only 1 GPU"):
        plan_slots("indextts2", 1, 2, None)
    with pytest.raises(SlotError, match="single slot"):
        plan_slots("espeak", 0, 2, "x")
    assert Slot("gpu1", 1).device == "cuda:1"


def test_worker_ids_and_registry_keys() -> None:
    settings = WorkerSettings(pod_name="indextts-worker-7d9f")
    assert settings.worker_id("gpu0") == "indextts-worker-7d9f/gpu0"
    assert registry_key("indextts-worker-7d9f/gpu0") == "indextts-worker-7d9f_gpu0"
    assert registry_key("pod.example/cpu0") == "pod_example_cpu0"


def test_every_worker_setting_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "inference-pod.md").read_text(encoding="utf-8")
    missing = [name for name in WorkerSettings.model_fields if f"`TTS_WORKER_{name.upper()}`" not in doc]
    assert missing == []


def test_the_heartbeat_must_beat_the_ack_deadline() -> None:
    assert WorkerSettings(heartbeat_seconds=5, ack_wait_seconds=10).heartbeat_seconds == 5
    with pytest.raises(ValueError, match="at most half"):
        WorkerSettings(heartbeat_seconds=5, ack_wait_seconds=8)
