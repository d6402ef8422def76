"""Every validation rule of the request: the bad value goes in, INVALID_INPUT naming the field comes out."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, TTSError
from tts_api.policy import ValidationPolicy, stored_record_policy
from tts_api.request import IndexTTSConfig, scaled_emotion_vector
from tts_api.validation import parse_request, parse_spec

CONFIG = "workflow_config.indextts_config"


def speech_body(**config: Any) -> dict[str, Any]:
    """The workflow API's basic example, with ``config`` merged into ``indextts_config``."""
    return {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": "你好，这是IndexTTS2生成的语音。",
                "output_path": "/share/workflows/output/hello.wav",
                **config,
            },
        },
    }


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = copy.deepcopy(body)
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return body


def rejection(body: Any, policy: ValidationPolicy) -> TTSError:
    with pytest.raises(TTSError) as caught:
        parse_request(body, policy=policy)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.code.http_status == 400
    return caught.value


# (case, body, field the error must name, words the message must contain)
BAD_REQUESTS: list[tuple[str, Any, str, str]] = [
    # text
    (
        "text missing",
        without(speech_body(), "workflow_config", "indextts_config", "text"),
        f"{CONFIG}.text",
        "required for indextts.generate_speech",
    ),
    ("text empty", speech_body(text=""), f"{CONFIG}.text", "at least 1 character"),
    ("text blank", speech_body(text=" \t\n "), f"{CONFIG}.text", "must not be empty or only whitespace"),
    ("text not a string", speech_body(text=42), f"{CONFIG}.text", "valid string"),
    ("text over the ceiling", speech_body(text="字" * 20_001), f"{CONFIG}.text", "at most 20000"),
    # emotion_alpha
    ("alpha above 1", speech_body(emotion_alpha=2), f"{CONFIG}.emotion_alpha", "less than or equal to 1"),
    (
        "alpha below 0",
        speech_body(emotion_alpha=-0.1),
        f"{CONFIG}.emotion_alpha",
        "greater than or equal to 0",
    ),
    ("alpha as a string", speech_body(emotion_alpha="0.5"), f"{CONFIG}.emotion_alpha", "valid number"),
    ("alpha NaN", speech_body(emotion_alpha=math.nan), f"{CONFIG}.emotion_alpha", "finite number"),
    ("alpha a boolean", speech_body(emotion_alpha=True), f"{CONFIG}.emotion_alpha", "valid number"),
    # emotion_vector
    ("vector of 7", speech_body(emotion_vector=[0.1] * 7), f"{CONFIG}.emotion_vector", "at least 8 items"),
    ("vector of 9", speech_body(emotion_vector=[0.1] * 9), f"{CONFIG}.emotion_vector", "at most 8 items"),
    (
        "vector weight above 1",
        speech_body(emotion_vector=[0, 0, 1.5, 0, 0, 0, 0, 0]),
        f"{CONFIG}.emotion_vector[2]",
        "less than or equal to 1",
    ),
    (
        "vector weight negative",
        speech_body(emotion_vector=[0, 0, 0, 0, 0, 0, 0, -0.2]),
        f"{CONFIG}.emotion_vector[7]",
        "greater than or equal to 0",
    ),
    (
        "vector weight infinite",
        speech_body(emotion_vector=[math.inf, 0, 0, 0, 0, 0, 0, 0]),
        f"{CONFIG}.emotion_vector[0]",
        "finite number",
    ),
    (
        "vector weight NaN",
        speech_body(emotion_vector=[0, math.nan, 0, 0, 0, 0, 0, 0]),
        f"{CONFIG}.emotion_vector[1]",
        "finite number",
    ),
    (
        "vector weight a string",
        speech_body(emotion_vector=["0.1", 0, 0, 0, 0, 0, 0, 0]),
        f"{CONFIG}.emotion_vector[0]",
        "valid number",
    ),
    ("vector not a list", speech_body(emotion_vector="happy"), f"{CONFIG}.emotion_vector", "valid list"),
    # max_text_tokens_per_segment
    (
        "tokens zero",
        speech_body(max_text_tokens_per_segment=0),
        f"{CONFIG}.max_text_tokens_per_segment",
        "greater than or equal to 20",
    ),
    (
        "tokens too many",
        speech_body(max_text_tokens_per_segment=601),
        f"{CONFIG}.max_text_tokens_per_segment",
        "less than or equal to 600",
    ),
    (
        "tokens fractional",
        speech_body(max_text_tokens_per_segment=120.5),
        f"{CONFIG}.max_text_tokens_per_segment",
        "valid integer",
    ),
    (
        "tokens as a string",
        speech_body(max_text_tokens_per_segment="120"),
        f"{CONFIG}.max_text_tokens_per_segment",
        "valid integer",
    ),
    # output_path
    (
        "output missing",
        without(speech_body(), "workflow_config", "indextts_config", "output_path"),
        f"{CONFIG}.output_path",
        "required for indextts.generate_speech",
    ),
    (
        "output escapes by ..",
        speech_body(output_path="/share/../etc/cron.d/x.wav"),
        f"{CONFIG}.output_path",
        "'..'",
    ),
    ("output relative escape", speech_body(output_path="../outside.wav"), f"{CONFIG}.output_path", "'..'"),
    (
        "output absolute elsewhere",
        speech_body(output_path="/etc/speech.wav"),
        f"{CONFIG}.output_path",
        "under the shared root /share/",
    ),
    (
        "output beside the prefix",
        speech_body(output_path="/shared/speech.wav"),
        f"{CONFIG}.output_path",
        "under the shared root /share/",
    ),
    ("output not a wav", speech_body(output_path="/share/out/speech.mp3"), f"{CONFIG}.output_path", ".wav"),
    ("output the root itself", speech_body(output_path="/share"), f"{CONFIG}.output_path", "not the root"),
    (
        "output a directory",
        speech_body(output_path="/share/out/"),
        f"{CONFIG}.output_path",
        "not a directory",
    ),
    ("output empty", speech_body(output_path=""), f"{CONFIG}.output_path", "must not be empty"),
    (
        "output control character",
        speech_body(output_path="/share/a\x00.wav"),
        f"{CONFIG}.output_path",
        "control characters",
    ),
    # reference_audio and emotion_reference
    (
        "reference elsewhere",
        speech_body(reference_audio="/path/to/reference.wav"),
        f"{CONFIG}.reference_audio",
        "under the shared root /share/",
    ),
    (
        "reference escapes",
        speech_body(reference_audio="/share/ref/../../etc/x.wav"),
        f"{CONFIG}.reference_audio",
        "'..'",
    ),
    (
        "reference not a wav",
        speech_body(reference_audio="/share/ref/voice.mp3"),
        f"{CONFIG}.reference_audio",
        ".wav",
    ),
    (
        "reference missing on disk",
        speech_body(reference_audio="/share/ref/absent.wav"),
        f"{CONFIG}.reference_audio",
        "does not exist",
    ),
    (
        "emotion reference elsewhere",
        speech_body(emotion_reference="/tmp/emotion.wav"),
        f"{CONFIG}.emotion_reference",
        "under the shared root /share/",
    ),
    (
        "emotion reference escapes",
        speech_body(emotion_reference="../emotion.wav"),
        f"{CONFIG}.emotion_reference",
        "'..'",
    ),
    # emotion_text, use_random, unknown fields
    ("emotion text blank", speech_body(emotion_text="   "), f"{CONFIG}.emotion_text", "must not be empty"),
    ("use_random a string", speech_body(use_random="yes"), f"{CONFIG}.use_random", "valid boolean"),
    ("use_random a number", speech_body(use_random=1), f"{CONFIG}.use_random", "valid boolean"),
    ("camelCase field in REST", speech_body(emotionAlpha=0.3), f"{CONFIG}.emotionAlpha", "not a known field"),
    ("misspelt field", speech_body(emotion_alpa=0.3), f"{CONFIG}.emotion_alpa", "not a known field"),
    # model, language
    ("model unknown", speech_body(model="indextts-3"), f"{CONFIG}.model", "indextts-2, indextts-2.5, espeak"),
    (
        "model upper case",
        speech_body(model="IndexTTS-2"),
        f"{CONFIG}.model",
        "not a model of this deployment",
    ),
    ("model a number", speech_body(model=2), f"{CONFIG}.model", "valid string"),
    ("language a name", speech_body(language="english"), f"{CONFIG}.language", "ISO 639-1"),
    ("language upper case", speech_body(language="EN"), f"{CONFIG}.language", "ISO 639-1"),
    # the chain
    (
        "chain empty",
        {"workflow_config": {"workflow_chain": []}},
        "workflow_config.workflow_chain",
        "at least 1",
    ),
    (
        "chain unknown task",
        {"workflow_config": {"workflow_chain": ["indextts.bogus"]}},
        "workflow_config.workflow_chain[0]",
        "indextts.generate_speech",
    ),
    (
        "chain repeats a task",
        {"workflow_config": {"workflow_chain": ["indextts.health_check", "indextts.health_check"]}},
        "workflow_config.workflow_chain",
        "more than once",
    ),
    ("chain missing", {"workflow_config": {}}, "workflow_config.workflow_chain", "is required"),
    (
        "chain not a list",
        {"workflow_config": {"workflow_chain": "indextts.health_check"}},
        "workflow_config.workflow_chain",
        "valid list",
    ),
    (
        "speech without config",
        {"workflow_config": {"workflow_chain": ["indextts.generate_speech"]}},
        "workflow_config.indextts_config",
        "required when the chain includes indextts.generate_speech",
    ),
    ("workflow_config missing", {"video_path": "/app/videos/example.mp4"}, "workflow_config", "is required"),
    ("video_path not a string", {**speech_body(), "video_path": 7}, "video_path", "valid string"),
    ("body not an object", ["indextts.health_check"], "body", "must be an object"),
]


@pytest.mark.parametrize(
    ("body", "field", "words"), [c[1:] for c in BAD_REQUESTS], ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_request_is_invalid_input_naming_the_field(
    body: Any, field: str, words: str, policy: ValidationPolicy
) -> None:
    error = rejection(body, policy)
    assert error.field == field
    assert error.message.startswith(f"{field}: ")
    assert words in error.message


def test_configured_text_limit_names_the_limit(share: Path) -> None:
    strict = ValidationPolicy(shared_dir=share, max_text_length=10)
    error = rejection(speech_body(text="a" * 11), strict)
    assert error.field == f"{CONFIG}.text"
    assert "11 characters; at most 10" in error.message
    assert parse_request(speech_body(text="a" * 10), policy=strict).workflow_config.indextts_config


def test_symlink_that_leaves_the_root_is_rejected(
    share: Path, tmp_path: Path, policy: ValidationPolicy
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"RIFF")
    (share / "escape").symlink_to(outside)
    (share / "workflows" / "output").mkdir(parents=True)
    (share / "workflows" / "output" / "escape").symlink_to(outside)
    error = rejection(speech_body(output_path="/share/workflows/output/escape/speech.wav"), policy)
    assert error.field == f"{CONFIG}.output_path"
    assert "symbolic link" in error.message
    error = rejection(speech_body(reference_audio="/share/escape/secret.wav"), policy)
    assert error.field == f"{CONFIG}.reference_audio"
    assert "symbolic link" in error.message


def test_symlink_inside_the_root_is_followed(share: Path, policy: ValidationPolicy) -> None:
    (share / "voices").mkdir()
    (share / "voices" / "alice.wav").write_bytes(b"RIFF")
    (share / "current").symlink_to(share / "voices")
    request = parse_request(speech_body(reference_audio="/share/current/alice.wav"), policy=policy)
    assert request.workflow_config.indextts_config is not None
    assert request.workflow_config.indextts_config.reference_audio == "/share/current/alice.wav"


def test_only_the_configured_models_are_accepted(share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_MODELS", "indextts-2.5, espeak")
    configured = ValidationPolicy(shared_dir=share)
    assert configured.models == ("indextts-2.5", "espeak")
    error = rejection(speech_body(model="indextts-2"), configured)
    assert error.field == f"{CONFIG}.model"
    assert "use one of indextts-2.5, espeak (TTS_MODELS)" in error.message
    accepted = parse_request(speech_body(model="indextts-2.5", language="es"), policy=configured)
    config = accepted.workflow_config.indextts_config
    assert config is not None
    assert (config.model, config.language) == ("indextts-2.5", "es")
    # A record accepted earlier stays readable after its model is no longer configured.
    assert parse_request(speech_body(model="indextts-2"), policy=stored_record_policy(configured))


def test_a_default_model_must_be_configured(share: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TTS_MODELS", "espeak")
    monkeypatch.setenv("TTS_DEFAULT_MODEL", "indextts-2")
    with pytest.raises(ValueError, match="TTS_DEFAULT_MODEL: 'indextts-2' is not a model"):
        ValidationPolicy(shared_dir=share)


def test_unknown_voice_preset_lists_the_known_ones(share: Path) -> None:
    with_presets = ValidationPolicy(shared_dir=share, voice_presets=frozenset({"default", "male_01"}))
    error = rejection(speech_body(reference_audio="narrator"), with_presets)
    assert error.field == f"{CONFIG}.reference_audio"
    assert "default, male_01" in error.message
    error = rejection(speech_body(emotion_reference="narrator"), with_presets)
    assert error.field == f"{CONFIG}.emotion_reference"


def test_many_errors_are_all_listed(policy: ValidationPolicy) -> None:
    error = rejection(speech_body(emotion_alpha=3, use_random="no", max_text_tokens_per_segment=1), policy)
    assert error.field == f"{CONFIG}.emotion_alpha"
    for field in ("emotion_alpha", "use_random", "max_text_tokens_per_segment"):
        assert f"{CONFIG}.{field}:" in error.message


# --- what is accepted ---------------------------------------------------------------------------


def test_the_api_defaults_fill_in(policy: ValidationPolicy) -> None:
    request = parse_request(speech_body(), policy=policy)
    config = request.workflow_config.indextts_config
    assert config is not None
    assert (config.emotion_alpha, config.use_random, config.max_text_tokens_per_segment) == (0.65, False, 120)
    assert (config.reference_audio, config.emotion_reference, config.emotion_vector, config.emotion_text) == (
        None,
        None,
        None,
        None,
    )
    assert request.video_path == "/app/videos/example.mp4"


def test_the_api_references_full_request_is_accepted_under_share(
    share: Path, policy: ValidationPolicy
) -> None:
    (share / "ref").mkdir()
    for name in ("reference.wav", "emotion.wav"):
        (share / "ref" / name).write_bytes(b"RIFF")
    body = speech_body(
        text="要转换的文本内容",
        output_path="/share/workflows/output/speech.wav",
        reference_audio="/share/ref/reference.wav",
        emotion_reference="/share/ref/emotion.wav",
        emotion_alpha=0.65,
        emotion_vector=[0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9],
        emotion_text="请用开心的语气说这句话",
        use_random=False,
        max_text_tokens_per_segment=120,
    )
    config = parse_request(body, policy=policy).workflow_config.indextts_config
    assert config is not None
    assert config.emotion_vector == [0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9]
    assert config.emotion_text == "请用开心的语气说这句话"


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("/share/workflows/output/hello.wav", "/share/workflows/output/hello.wav"),
        ("workflows/output/hello.wav", "/share/workflows/output/hello.wav"),
        ("/share//workflows/./output/hello.WAV", "/share/workflows/output/hello.WAV"),
        ("./workflows/output/a.wav", "/share/workflows/output/a.wav"),
        ("/share/workflows/output/..hidden/a.wav", "/share/workflows/output/..hidden/a.wav"),
    ],
)
def test_output_path_is_made_canonical(
    given: str, canonical: str, unmounted_policy: ValidationPolicy
) -> None:
    config = parse_request(
        speech_body(output_path=given), policy=unmounted_policy
    ).workflow_config.indextts_config
    assert config is not None
    assert config.output_path == canonical


def test_without_the_volume_only_lexical_rules_apply(unmounted_policy: ValidationPolicy) -> None:
    request = parse_request(
        speech_body(reference_audio="/share/ref/not-checked-here.wav"), policy=unmounted_policy
    )
    assert request.workflow_config.indextts_config is not None


def test_preset_names_are_accepted_for_both_references(policy: ValidationPolicy) -> None:
    config = parse_request(
        speech_body(reference_audio="male_01", emotion_reference="default"), policy=policy
    ).workflow_config.indextts_config
    assert config is not None
    assert (config.reference_audio, config.emotion_reference) == ("male_01", "default")


@pytest.mark.parametrize(
    "task", [TaskName.HEALTH_CHECK, TaskName.GET_MODEL_INFO, TaskName.LIST_VOICE_PRESETS]
)
def test_tasks_other_than_speech_need_no_config(task: TaskName, policy: ValidationPolicy) -> None:
    request = parse_request(
        {"video_path": "/app/videos/x.mp4", "workflow_config": {"workflow_chain": [task]}}, policy=policy
    )
    assert request.workflow_config.workflow_chain == [task]
    assert not request.workflow_config.speaks


def test_chain_keeps_its_order(policy: ValidationPolicy) -> None:
    chain = ["indextts.health_check", "indextts.generate_speech", "indextts.get_model_info"]
    body = speech_body()
    body["workflow_config"]["workflow_chain"] = chain
    assert [t.value for t in parse_request(body, policy=policy).workflow_config.workflow_chain] == chain


# --- the same rules in the resource's camelCase -------------------------------------------------


def test_spec_errors_name_the_camel_case_field(unmounted_policy: ValidationPolicy) -> None:
    spec: dict[str, Any] = {
        "workflowConfig": {
            "workflowChain": ["indextts.generate_speech"],
            "indexttsConfig": {
                "text": "hi",
                "outputPath": "/share/workflows/output/a.wav",
                "emotionAlpha": 2,
            },
        }
    }
    with pytest.raises(TTSError) as caught:
        parse_spec(spec, policy=unmounted_policy)
    assert caught.value.field == "spec.workflowConfig.indexttsConfig.emotionAlpha"
    del spec["workflowConfig"]["indexttsConfig"]["text"]
    spec["workflowConfig"]["indexttsConfig"]["emotionAlpha"] = 0.5
    with pytest.raises(TTSError) as caught:
        parse_spec(spec, policy=unmounted_policy)
    assert caught.value.field == "spec.workflowConfig.indexttsConfig.text"


def test_spec_refuses_snake_case_fields(unmounted_policy: ValidationPolicy) -> None:
    with pytest.raises(TTSError) as caught:
        parse_spec(
            {"workflow_config": {"workflow_chain": ["indextts.health_check"]}}, policy=unmounted_policy
        )
    assert caught.value.field in {"spec.workflow_config", "spec.workflowConfig"}


# --- emotion vectors whose weights sum above 1 ---------------------------------------------------


@pytest.mark.parametrize(
    ("given", "applied"),
    [
        ([0.8, 0, 0, 0, 0, 0, 0.2, 0], [0.8, 0, 0, 0, 0, 0, 0.2, 0]),
        ([0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0], [0.25, 0.25, 0.25, 0.25, 0, 0, 0, 0]),
        ([1, 1, 1, 1, 1, 1, 1, 1], [0.125] * 8),
        ([0] * 8, [0] * 8),
    ],
)
def test_vector_summing_above_one_is_scaled_to_one(given: list[float], applied: list[float]) -> None:
    assert scaled_emotion_vector(given) == pytest.approx(applied)
    assert IndexTTSConfig(emotion_vector=given).effective_emotion_vector() == pytest.approx(applied)
