"""The worker's parts with real I/O: WAV output under the shared root, reference checks, espeak, HTTP."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile

from inference_pod.audio_output import write_wav
from inference_pod.engines.base import SynthesisRequest
from inference_pod.engines.espeak import VOICE_ENGLISH, VOICE_MANDARIN, EspeakEngine, voice_for
from inference_pod.health_server import HealthServer
from inference_pod.metrics import WorkerMetrics
from inference_pod.tasks import resolve_audio
from tests.inference_pod.conftest import write_voice
from tts_api.errors import ErrorCode, TTSError
from tts_api.outputs import OutputMark
from tts_api.policy import ValidationPolicy
from tts_api.shared_paths import SharedPathError
from tts_cli.main import build_parser
from voice_library.presets import parse_presets

MARK = OutputMark(workflow_uid="uid-1", namespace="default", name="wf", stage="speech")


def test_a_wav_is_written_whole_with_its_folders_and_no_leftovers(
    policy: ValidationPolicy, share: Path
) -> None:
    samples = (np.sin(np.arange(22050) / 10) * 1000).astype(np.int16)
    target = write_wav(policy.shared_root, "/share/a/b/c.wav", samples, 22050, MARK)
    assert target == share / "a" / "b" / "c.wav"
    read, rate = soundfile.read(target, dtype="int16")
    assert rate == 22050
    assert np.array_equal(read, samples)
    assert os.listdir(share / "a" / "b") == ["c.wav"]  # the temporary file was renamed


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_a_wav_gets_the_mode_the_umask_gives(
    umask: int, mode: int, policy: ValidationPolicy, share: Path
) -> None:
    """Not mkstemp's private 0600: other readers of the shared volume must be able to read it."""
    samples = np.zeros(100, dtype=np.int16)
    previous = os.umask(umask)
    try:
        target = write_wav(policy.shared_root, "/share/mode.wav", samples, 22050, MARK)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_no_wav_is_written_outside_the_shared_root(
    policy: ValidationPolicy, share: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (share / "escape").symlink_to(outside)
    samples = np.zeros(100, dtype=np.int16)
    for path in ["/share/../etc/x.wav", "/tmp/x.wav", "/share/escape/x.wav"]:
        with pytest.raises(SharedPathError):
            write_wav(policy.shared_root, path, samples, 22050, MARK)
    assert list(outside.iterdir()) == []


@pytest.fixture
def references(share: Path) -> dict[str, str]:
    write_voice(share / "voices" / "good.wav", seconds=1.0)
    write_voice(share / "voices" / "short.wav", seconds=0.1)
    (share / "voices" / "text.wav").write_text("not audio")
    return {"good": "/share/voices/good.wav"}


PRESETS = parse_presets(
    "narrator: {name: Narrator, reference_audio: /share/voices/good.wav}\n"
    "ghost: {name: Ghost, reference_audio: /share/voices/missing.wav}\n"
)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("/share/voices/missing.wav", "does not exist"),
        ("/share/voices/short.wav", "give at least 0.5 s"),
        ("/share/voices/text.wav", "not readable audio"),
        ("unknown_preset", "not a voice preset (presets: ghost, narrator)"),
        ("ghost", "does not exist"),
        ("/etc/passwd.wav", "must be under the shared root"),
    ],
)
def test_bad_references_are_the_users_to_fix(
    policy: ValidationPolicy, references: dict[str, str], value: str, words: str
) -> None:
    with pytest.raises(TTSError) as caught:
        resolve_audio("reference_audio", value, policy.shared_root, PRESETS)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.message.startswith("reference_audio: ")
    assert words in caught.value.message


def test_a_preset_names_its_reference_audio(
    policy: ValidationPolicy, references: dict[str, str], share: Path
) -> None:
    assert (
        resolve_audio("reference_audio", "narrator", policy.shared_root, PRESETS)
        == share / "voices" / "good.wav"
    )
    assert resolve_audio("emotion_reference", references["good"], policy.shared_root, {}) == (
        share / "voices" / "good.wav"
    )


@pytest.fixture(scope="module")
def espeak() -> EspeakEngine:
    engine = EspeakEngine()
    engine.load()
    return engine


def test_espeak_picks_mandarin_or_english_by_the_text() -> None:
    assert voice_for("你好") == VOICE_MANDARIN
    assert voice_for("hello 世界") == VOICE_MANDARIN
    assert voice_for("hello world") == VOICE_ENGLISH


def test_espeak_speaks_faster_when_happy_than_when_sad(espeak: EspeakEngine) -> None:
    text = "今天天气真好，我们一起去公园散步吧。"
    happy = espeak.synthesize(
        SynthesisRequest(text=text, emotion_vector=[1, 0, 0, 0, 0, 0, 0, 0], emotion_alpha=1),
        lambda d, t: None,
    )
    sad = espeak.synthesize(
        SynthesisRequest(text=text, emotion_vector=[0, 0, 1, 0, 0, 0, 0, 0], emotion_alpha=1),
        lambda d, t: None,
    )
    assert happy.sample_rate == sad.sample_rate == 22050
    assert sad.duration > happy.duration * 1.2
    assert happy.warnings == []


def test_espeak_speaks_without_cloning_and_says_so(espeak: EspeakEngine, tmp_path: Path) -> None:
    voice = write_voice(tmp_path / "v.wav")
    outcome = espeak.synthesize(
        SynthesisRequest(text="Hello there.", reference_audio=voice, emotion_text="说得开心一点"),
        lambda d, t: None,
    )
    assert outcome.duration > 0.3
    assert np.abs(outcome.samples).max() > 1000  # sound, not silence
    assert any("cannot clone voices" in warning for warning in outcome.warnings)
    assert espeak.description.capabilities.voice_cloning is False


def test_espeak_refuses_text_with_nothing_to_say(espeak: EspeakEngine) -> None:
    with pytest.raises(TTSError) as caught:
        espeak.synthesize(SynthesisRequest(text="   "), lambda d, t: None)
    assert caught.value.code is ErrorCode.INVALID_INPUT


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = (await asyncio.wait_for(reader.read(), timeout=5)).decode()
    writer.close()
    status = int(response.split()[1])
    return status, response.split("\r\n\r\n", 1)[1]


async def test_readiness_turns_true_only_when_the_model_is_loaded() -> None:
    metrics = WorkerMetrics()
    metrics.jobs.labels("indextts.generate_speech", "succeeded").inc()
    ready = False
    server = HealthServer("127.0.0.1", 0, ready=lambda: ready, alive=lambda: True, registry=metrics.registry)
    await server.start()
    try:
        assert (await http_get(server.port, "/healthz"))[0] == 200
        assert (await http_get(server.port, "/readyz"))[0] == 503
        ready = True
        assert (await http_get(server.port, "/readyz"))[0] == 200
        status, body = await http_get(server.port, "/metrics")
        assert status == 200
        assert 'tts_worker_jobs_total{outcome="succeeded",task="indextts.generate_speech"} 1.0' in body
        assert "tts_worker_real_time_factor_bucket" in body
        assert (await http_get(server.port, "/nope"))[0] == 404
    finally:
        await server.stop()


def test_the_worker_subcommand_is_registered() -> None:
    args = build_parser().parse_args(["worker", "--engine", "espeak", "--http-port", "0"])
    assert (args.engine, args.http_port) == ("espeak", 0)


def test_log_records_about_a_job_carry_its_ids() -> None:
    import json
    import logging

    from inference_pod.logs import JsonFormatter

    record = logging.LogRecord(
        "inference_pod.worker", logging.INFO, __file__, 1, "job %s started", ("u/x/1",), None
    )
    record.job_id, record.workflow, record.workflow_uid = "u/x/1", "hello", "u"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "job u/x/1 started"
    assert (line["job_id"], line["workflow"], line["workflow_uid"], line["level"]) == (
        "u/x/1",
        "hello",
        "u",
        "info",
    )
