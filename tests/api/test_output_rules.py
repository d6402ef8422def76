"""The output rules as the gateway applies them before it accepts a workflow (real files, no mocks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from tts_api.errors import ErrorCode, TTSError
from tts_api.outputs import OutputMark, read_mark, wav_bytes
from tts_api.policy import ValidationPolicy, stored_record_policy
from tts_api.validation import parse_request, parse_spec

FIELD = "workflow_config.indextts_config.output_path"


def body(output_path: str) -> dict[str, object]:
    return {
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {"text": "hi", "output_path": output_path},
        }
    }


def refusal(output_path: str, policy: ValidationPolicy) -> TTSError:
    with pytest.raises(TTSError) as raised:
        parse_request(body(output_path), policy=policy)
    assert raised.value.code is ErrorCode.INVALID_INPUT
    assert raised.value.field == FIELD
    return raised.value


@pytest.fixture
def outputs(share: Path) -> Path:
    folder = share / "workflows" / "output"
    folder.mkdir(parents=True)
    return folder


def test_the_examples_output_folder_is_the_default(unmounted_policy: ValidationPolicy) -> None:
    request = parse_request(body("/share/workflows/output/hello.wav"), policy=unmounted_policy)
    assert request.workflow_config.indextts_config is not None


@pytest.mark.parametrize(
    "path",
    [
        "/share/voices/default.wav",
        "/share/a.wav",
        "/share/workflows/other/a.wav",
        "/share/workflows/output.wav",
    ],
)
def test_an_output_outside_the_output_folder_is_refused_saying_where(
    path: str, unmounted_policy: ValidationPolicy
) -> None:
    error = refusal(path, unmounted_policy)
    assert "under the output folder /share/workflows/output/" in error.message
    assert "TTS_OUTPUT_DIR" in error.message


def test_the_output_folder_is_a_setting(tmp_path: Path) -> None:
    anywhere = ValidationPolicy(shared_dir=tmp_path / "none", output_dir="")
    assert parse_request(body("/share/a.wav"), policy=anywhere)
    elsewhere = ValidationPolicy(shared_dir=tmp_path / "none", output_dir="tts/results")
    assert "/share/tts/results/" in refusal("/share/workflows/output/a.wav", elsewhere).message
    with pytest.raises(ValueError, match="relative to the shared root"):
        ValidationPolicy(output_dir="../outside")


def test_a_stored_record_stays_readable_when_the_output_folder_moves(tmp_path: Path) -> None:
    moved = ValidationPolicy(shared_dir=tmp_path / "none", output_dir="elsewhere")
    spec = {
        "workflowConfig": {
            "workflowChain": ["indextts.generate_speech"],
            "indexttsConfig": {"text": "hi", "outputPath": "/share/workflows/output/old.wav"},
        }
    }
    assert parse_spec(spec, policy=stored_record_policy(moved))


def test_a_name_longer_than_name_max_is_refused_before_acceptance(
    unmounted_policy: ValidationPolicy, policy: ValidationPolicy, outputs: Path
) -> None:
    for where in (unmounted_policy, policy):  # lexically, and on the mounted volume
        error = refusal("/share/workflows/output/" + "长" * 90 + ".wav", where)  # 274 bytes
        assert "274 bytes" in error.message
        assert "NAME_MAX" in error.message
    assert parse_request(body("/share/workflows/output/" + "n" * 251 + ".wav"), policy=policy)


def test_an_output_that_is_a_folder_is_refused(policy: ValidationPolicy, outputs: Path) -> None:
    (outputs / "taken.wav").mkdir()
    error = refusal("/share/workflows/output/taken.wav", policy)
    assert "is a folder" in error.message


def test_a_file_the_service_did_not_write_is_refused(policy: ValidationPolicy, outputs: Path) -> None:
    soundfile.write(outputs / "theirs.wav", np.zeros(160, dtype=np.int16), 16000)
    error = refusal("/share/workflows/output/theirs.wav", policy)
    assert "not written by this service" in error.message
    assert "choose another output_path" in error.message


def test_another_workflows_audio_is_refused_naming_it(policy: ValidationPolicy, outputs: Path) -> None:
    mark = OutputMark(workflow_uid="u-1", namespace="team-a", name="greeting", stage="generate_speech")
    (outputs / "greeting.wav").write_bytes(wav_bytes(b"\0\0" * 160, 16000, mark))
    error = refusal("/share/workflows/output/greeting.wav", policy)
    assert "holds the audio of workflow team-a/greeting (uid u-1)" in error.message
    assert "delete that workflow first" in error.message


def test_the_operator_reading_a_spec_does_not_refuse_its_own_output(
    policy: ValidationPolicy, outputs: Path
) -> None:
    """Only a new request is checked for a free path; a spec re-read after its audio is written is not."""
    mark = OutputMark(workflow_uid="u-1", name="greeting", stage="generate_speech")
    (outputs / "greeting.wav").write_bytes(wav_bytes(b"\0\0" * 160, 16000, mark))
    spec = {
        "workflowConfig": {
            "workflowChain": ["indextts.generate_speech"],
            "indexttsConfig": {"text": "hi", "outputPath": "/share/workflows/output/greeting.wav"},
        }
    }
    assert parse_spec(spec, policy=policy)


def test_the_mark_is_read_back_and_the_wav_plays(tmp_path: Path) -> None:
    mark = OutputMark(workflow_uid="u-1", namespace="n", name="w", stage="generate_speech", result={"a": 1})
    samples = np.arange(-500, 501, dtype=np.int16)
    path = tmp_path / "marked.wav"
    path.write_bytes(wav_bytes(samples.astype("<i2").tobytes(), 22050, mark))
    audio, rate = soundfile.read(path, dtype="int16")
    assert rate == 22050
    assert np.array_equal(audio, samples)
    assert read_mark(path) == mark
    assert soundfile.SoundFile(path).software == "indextts-k8s"
    plain = tmp_path / "plain.wav"
    soundfile.write(plain, samples, 22050)
    assert read_mark(plain) is None
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    assert read_mark(tmp_path / "junk.wav") is None
