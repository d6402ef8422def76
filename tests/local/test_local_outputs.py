"""Outputs end to end on the local stack (`indextts-k8s local`, the synthetic engine): refused at once
when they cannot be written, never written over another's file, and deleted with their workflow."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile

from tests.local.stack import Stack, running_stack
from tests.tmpfs import mounted_tmpfs
from tts_api.outputs import read_mark

FIELD = "workflow_config.indextts_config.output_path"
FAST = {"TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "0"}


def speech(output_path: str, text: str = "hello") -> dict[str, Any]:
    return {
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {"text": text, "output_path": output_path},
        }
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("outputs"), "--engine", "synthetic", env=FAST) as running:
        yield running


def wait_until(predicate: Any, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def refused(client: httpx.Client, output_path: str) -> dict[str, Any]:
    response = client.post("/v1/workflows", json=speech(output_path))
    assert response.status_code == 400, response.text
    error: dict[str, Any] = response.json()
    assert (error["error_code"], error["field"]) == ("INVALID_INPUT", FIELD)
    return error


def test_outputs_that_cannot_be_written_are_refused_before_acceptance(stack: Stack) -> None:
    folder = stack.share / "workflows" / "output"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a-folder.wav").mkdir()
    soundfile.write(folder / "theirs.wav", np.zeros(160, dtype=np.int16), 16000)
    with stack.client() as client:
        assert "NAME_MAX" in refused(client, "/share/workflows/output/" + "x" * 300 + ".wav")["error"]
        assert "is a folder" in refused(client, "/share/workflows/output/a-folder.wav")["error"]
        assert "not written by this service" in refused(client, "/share/workflows/output/theirs.wav")["error"]
        assert "output folder" in refused(client, "/share/voices/default.wav")["error"]


def test_deleting_a_workflow_deletes_its_audio_and_frees_its_path(stack: Stack) -> None:
    wav = stack.share / "workflows" / "output" / "deleted-with-it.wav"
    with stack.client() as client:
        made = client.post("/v1/workflows", json=speech("/share/workflows/output/deleted-with-it.wav"))
        assert made.status_code == 200, made.text
        workflow_id = made.json()["workflow_id"]
        mark = read_mark(wav)
        assert mark is not None
        assert mark.name == workflow_id
        taken = refused(client, "/share/workflows/output/deleted-with-it.wav")["error"]
        assert "holds the audio of workflow" in taken
        assert workflow_id in taken
        assert client.delete(f"/v1/workflows/{workflow_id}").status_code == 200
        wait_until(lambda: not wav.exists(), "the deleted workflow's audio stayed")
        again = client.post("/v1/workflows", json=speech("/share/workflows/output/deleted-with-it.wav"))
    assert again.status_code == 200, again.text
    assert wav.is_file()


def test_audio_goes_when_the_time_to_live_runs_out(tmp_path: Path) -> None:
    env = {**FAST, "TTS_OPERATOR_DEFAULT_TTL_SECONDS": "1", "TTS_OPERATOR_TICK_SECONDS": "0.5"}
    with (
        running_stack(tmp_path, "--engine", "synthetic", env=env) as short_lived,
        short_lived.client() as client,
    ):
        made = client.post("/v1/workflows", json=speech("/share/workflows/output/expires.wav"))
        assert made.status_code == 200, made.text
        wav = short_lived.share / "workflows" / "output" / "expires.wav"
        wait_until(lambda: not wav.exists(), "the expired workflow's audio stayed", seconds=60)
        assert client.get(f"/v1/workflows/status/{made.json()['workflow_id']}").status_code == 404


def test_a_read_only_share_fails_the_workflow_at_once_saying_so(tmp_path: Path) -> None:
    """One attempt, not three, and words an operator can act on, the errno among them."""
    folder = tmp_path / "share" / "workflows" / "output"
    with (
        mounted_tmpfs(folder, "300k", "ro"),
        running_stack(tmp_path, "--engine", "synthetic", env=FAST) as read_only,
        read_only.client() as client,
    ):
        response = client.post("/v1/workflows", json=speech("/share/workflows/output/ro.wav"))
        error = response.json()
        status = client.get(f"/v1/workflows/status/{error['workflow_id']}").json()
    assert response.status_code == 500, response.text
    assert error["error_code"] == "PROCESSING_ERROR"
    assert "read-only" in error["error"]
    assert "EROFS" in error["error"]
    assert [stage["attempt"] for stage in status["stages"]] == [1]  # not retried
