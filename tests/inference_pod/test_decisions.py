"""The worker's pure decisions: segments, prosody, what to do after each ending, presets, engine choice."""

from __future__ import annotations

import pytest

from inference_pod.engines.factory import Slot, SlotError, engine_name, plan_slots
from inference_pod.engines.prosody import NEUTRAL, Prosody, prosody_for, vector_from_text
from inference_pod.engines.segments import count_tokens, split_segments
from inference_pod.outcomes import (
    HANDED_BACK_HEADER,
    Action,
    CancelReason,
    Outcome,
    after_cancel,
    after_failure,
    after_redelivery,
    handed_back_count,
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
    ("error", "retryable"),
    [
        (BAD_INPUT, False),  # the user's fault: final at once
        (MEMORY, True),  # transient: the operator decides whether another attempt runs
        (TTSError(ErrorCode.MODEL_NOT_READY, "loading"), True),
        (TTSError(ErrorCode.PROCESSING_ERROR, "boom"), True),
    ],
)
def test_a_failure_is_reported_once_and_acknowledged_never_retried_here(
    error: TTSError, retryable: bool
) -> None:
    decided = after_failure(error)
    assert (decided.action, decided.outcome, decided.retryable) == (Action.ACK, Outcome.FAILED, retryable)
    assert decided.error is error  # the message as the engine said it: no "gave up" here


def test_the_worker_has_no_way_to_nak_a_job() -> None:
    """Only the operator retries: a worker acknowledges every ending, or hands the attempt back."""
    assert set(Action) == {Action.ACK, Action.HAND_BACK}


def test_a_redelivered_job_is_an_abandoned_attempt() -> None:
    assert after_redelivery(attempt=2, delivered=1) is None  # the first delivery runs
    decided = after_redelivery(attempt=2, delivered=2)
    assert decided is not None
    assert (decided.action, decided.outcome, decided.retryable) == (Action.ACK, Outcome.ABANDONED, True)
    assert decided.error is not None
    assert decided.error.code is ErrorCode.PROCESSING_ERROR
    assert "the worker holding attempt 2 stopped without finishing it" in decided.error.message


def test_hand_backs_are_counted_in_a_header() -> None:
    assert handed_back_count(None) == 0
    assert handed_back_count({"Nats-Msg-Id": "x"}) == 0
    assert handed_back_count({HANDED_BACK_HEADER: "2"}) == 2
    assert handed_back_count({HANDED_BACK_HEADER: "junk"}) == 0


@pytest.mark.parametrize(
    ("reason", "action", "code"),
    [
        (CancelReason.OPERATOR, Action.ACK, ErrorCode.PROCESSING_ERROR),
        (CancelReason.DEADLINE, Action.ACK, ErrorCode.TASK_TIMEOUT),
        (CancelReason.SHUTDOWN, Action.HAND_BACK, None),  # handed back, reported by the next worker
    ],
)
def test_after_a_cancel(reason: CancelReason, action: Action, code: ErrorCode | None) -> None:
    decided = after_cancel(reason, "why")
    assert decided.action is action
    assert (decided.error.code if decided.error else None) is code
    assert decided.retryable is False  # a cancel or a passed deadline is never tried again


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
