"""The Python client and the `submit` verb against the gateway served over real HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from gateway.client import GatewayError, IndexTTSClient
from local_mode.record_store import LocalWorkflowStore
from tests.gateway.conftest import settle
from tests.gateway.served import served_gateway
from tests.gateway.test_app import SPEECH_OUTPUT, failed_with, succeeded
from tts_api.constants import TaskName
from tts_api.errors import ErrorCode
from tts_api.policy import ValidationPolicy
from tts_cli.main import main
from tts_cli.submit_command import ProgressBar, progress_line


@pytest.fixture
def base_url(nats_url: str, policy: ValidationPolicy) -> Iterator[str]:
    with served_gateway(nats_url, policy, sync_wait_seconds=10) as url:
        yield url


@pytest.fixture
async def operator_store(nats_url: str, policy: ValidationPolicy) -> AsyncIterator[LocalWorkflowStore]:
    """The same bucket, opened from the test's side to play the operator."""
    client = await nats.connect(nats_url)
    store = await LocalWorkflowStore.open(client.jetstream(), policy)
    yield store
    await store.close()
    await client.close()


async def test_workflow_api_client_generate_speech(base_url: str, operator_store: LocalWorkflowStore) -> None:
    operator = asyncio.create_task(settle(operator_store, succeeded))
    with IndexTTSClient(base_url) as client:
        result = await asyncio.to_thread(
            client.generate_speech,
            "Hello, this is a test.",
            "/share/workflows/output/test.wav",
            emotion_alpha=0.5,
        )
    workflow = await operator
    assert result["status"] == "success"
    assert result["workflow_id"] == workflow.metadata.name
    assert workflow.spec is not None
    config = workflow.spec.workflow_config.indextts_config
    assert config is not None
    assert (config.text, config.emotion_alpha) == ("Hello, this is a test.", 0.5)
    with IndexTTSClient(base_url) as client:
        status = await asyncio.to_thread(client.get_workflow_status, result["workflow_id"])
    assert status["status"] == "succeeded"


async def test_workflow_api_client_returns_error_bodies_like_the_workflow_api(base_url: str) -> None:
    with IndexTTSClient(base_url) as client:
        result = await asyncio.to_thread(client.generate_speech, "   ", "/share/workflows/output/a.wav")
    assert result["status"] == "error"
    assert result["error_code"] == "INVALID_INPUT"
    assert result["field"] == "workflow_config.indextts_config.text"


async def test_submit_wait_and_download(
    base_url: str, operator_store: LocalWorkflowStore, share: Path, tmp_path: Path
) -> None:
    wav = share / "workflows" / "output" / "hello.wav"
    seen: list[dict[str, Any]] = []
    with IndexTTSClient(base_url) as client:
        workflow_id = await asyncio.to_thread(
            client.submit,
            [TaskName.GENERATE_SPEECH],
            {"text": "hi", "output_path": "/share/workflows/output/hello.wav"},
        )
        wav.parent.mkdir(parents=True)  # as the worker would: a new workflow's output path is free
        wav.write_bytes(b"RIFF-and-so-on")
        waiting = asyncio.create_task(
            asyncio.to_thread(client.wait, workflow_id, poll_seconds=0.05, on_status=seen.append)
        )
        await asyncio.sleep(0.2)
        await settle(operator_store, succeeded)
        result = await waiting
        saved = await asyncio.to_thread(client.download_audio, workflow_id, tmp_path / "got.wav")
    assert result["output_path"] == SPEECH_OUTPUT["output_path"]
    assert seen[0]["status"] == "pending"
    assert seen[-1]["status"] == "succeeded"
    assert saved.read_bytes() == b"RIFF-and-so-on"


async def test_wait_raises_the_gateways_error(base_url: str, operator_store: LocalWorkflowStore) -> None:
    with IndexTTSClient(base_url) as client:
        workflow_id = await asyncio.to_thread(
            client.submit,
            [TaskName.GENERATE_SPEECH],
            {"text": "hi", "output_path": "/share/workflows/output/a.wav"},
        )
        await settle(operator_store, failed_with(ErrorCode.INSUFFICIENT_MEMORY))
        with pytest.raises(GatewayError) as caught:
            await asyncio.to_thread(client.wait, workflow_id, poll_seconds=0.05)
    assert caught.value.error_code == "INSUFFICIENT_MEMORY"
    assert caught.value.http_status == 503


async def test_submit_verb_prints_the_result(
    base_url: str, operator_store: LocalWorkflowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "submit",
        "--gateway",
        base_url,
        "--text",
        "你好",
        "--output-path",
        "/share/workflows/output/hello.wav",
        "--emotion-vector",
        "0.8,0,0,0,0,0,0.2,0",
    ]
    running = asyncio.create_task(asyncio.to_thread(main, argv))
    workflow = await settle(operator_store, succeeded)
    assert await running == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["output_path"] == SPEECH_OUTPUT["output_path"]
    assert f"workflow {workflow.metadata.name}" in err
    assert f"[{'#' * 30}] 100% - succeeded" in err.splitlines()  # the bar's last line, one per change
    assert workflow.spec is not None
    config = workflow.spec.workflow_config.indextts_config
    assert config is not None
    assert config.emotion_vector == [0.8, 0, 0, 0, 0, 0, 0.2, 0]


async def test_submit_verb_reports_bad_input_and_fails(
    base_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["submit", "--gateway", base_url, "--text", "hi", "--output-path", "/etc/x.wav"]
    assert await asyncio.to_thread(main, argv) == 1
    error = json.loads(capsys.readouterr().err)
    assert (error["error_code"], error["field"]) == (
        "INVALID_INPUT",
        "workflow_config.indextts_config.output_path",
    )


@pytest.mark.parametrize(
    ("status", "line"),
    [
        ({"progress": 0, "current_stage": None, "status": "pending"}, "[" + "." * 30 + "]   0% - pending"),
        (
            {"progress": 50, "current_stage": "indextts.generate_speech", "status": "running"},
            "[" + "#" * 15 + "." * 15 + "]  50% indextts.generate_speech running",
        ),
        (
            {"progress": 100, "current_stage": "indextts.generate_speech", "status": "succeeded"},
            "[" + "#" * 30 + "] 100% indextts.generate_speech succeeded",
        ),
    ],
)
def test_progress_line(status: dict[str, Any], line: str) -> None:
    assert progress_line(status) == line


def test_progress_bar_prints_each_change_once_off_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    for progress in (0, 0, 50, 50, 100):
        bar({"progress": progress, "status": "running"})
    assert len(out.getvalue().splitlines()) == 3
