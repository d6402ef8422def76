"""The gateway's HTTP API: the workflow API's bodies and status codes, sync and async, errors, auth, audio."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local_mode.record_store import LocalWorkflowStore
from tests.gateway.conftest import ID_ROUTES, GatewayFactory, not_found_body, settle
from tts_api.constants import Phase, StageState, TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.resource import HeartbeatStatus, StageStatus, TTSWorkflow, TTSWorkflowStatus
from tts_api.results import SpeechResult

NOW = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)
SPEECH = {
    "video_path": "/app/videos/example.mp4",
    "workflow_config": {
        "workflow_chain": ["indextts.generate_speech"],
        "indextts_config": {
            "text": "你好，这是IndexTTS2生成的语音。",
            "output_path": "/share/workflows/output/hello.wav",
        },
    },
}
SPEECH_OUTPUT: dict[str, Any] = {
    "output_path": "/share/workflows/output/hello.wav",
    "duration": 1.5,
    "sample_rate": 22050,
    "text_length": 16,
    "processing_time": 0.2,
    "model_info": {"model_type": "espeak-ng", "model_version": "1.52", "device": "cpu"},
    "parameters": {"emotion_alpha": 0.65, "use_random": False, "max_text_tokens_per_segment": 120},
}


def succeeded(workflow: TTSWorkflow) -> TTSWorkflowStatus:
    return TTSWorkflowStatus(
        phase=Phase.SUCCEEDED,
        stages=[
            StageStatus(
                name=TaskName.GENERATE_SPEECH, state=StageState.SUCCEEDED, attempt=1, output=SPEECH_OUTPUT
            )
        ],
        progress=100,
        result=SpeechResult.model_validate(SPEECH_OUTPUT),
        accepted_at=NOW,
        updated_at=NOW,
    )


def failed_with(code: ErrorCode) -> Any:
    def status(workflow: TTSWorkflow) -> TTSWorkflowStatus:
        error = ErrorInfo(code=code, message=f"{code.value} happened")
        stage = StageStatus(name=TaskName.GENERATE_SPEECH, state=StageState.FAILED, attempt=2, error=error)
        return TTSWorkflowStatus(phase=Phase.FAILED, stages=[stage], error=error, accepted_at=NOW)

    return status


def running(workflow: TTSWorkflow) -> TTSWorkflowStatus:
    stage = StageStatus(name=TaskName.GENERATE_SPEECH, state=StageState.RUNNING, attempt=1, started_at=NOW)
    return TTSWorkflowStatus(
        phase=Phase.RUNNING,
        stages=[stage],
        current_stage=TaskName.GENERATE_SPEECH,
        progress=40,
        heartbeat=HeartbeatStatus(pod="inference-0", worker="inference-0/cpu0", last_heartbeat=NOW),
        accepted_at=NOW,
    )


async def test_sync_request_answers_with_the_workflow_api_speech_body(
    gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        operator = asyncio.create_task(settle(store, succeeded))
        response = await client.post("/v1/workflows", json=SPEECH)
        workflow = await operator
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "success"
    assert body["workflow_id"] == workflow.metadata.name
    assert body["task_id"] == f"{workflow.metadata.uid}/generate_speech/1"
    for key in ("output_path", "duration", "sample_rate", "text_length", "processing_time"):
        assert body[key] == SPEECH_OUTPUT[key]
    assert body["model_info"]["model_type"] == "espeak-ng"
    assert body["parameters"]["emotion_alpha"] == 0.65
    assert body["audio_url"] == f"/v1/workflows/{workflow.metadata.name}/audio"
    stored = await store.get(workflow.metadata.name)
    assert stored is not None
    assert stored.spec is not None
    assert stored.spec.video_path == "/app/videos/example.mp4"


@pytest.mark.parametrize("how", [{"params": {"async": "true"}}, {"headers": {"Prefer": "respond-async"}}])
async def test_async_request_answers_at_once_with_the_workflow_id(
    how: dict[str, Any], gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        response = await client.post("/v1/workflows", json=SPEECH, **how)
        assert response.status_code == 202
        body = response.json()
        assert body["status"] == "accepted"
        assert body["status_url"] == f"/v1/workflows/status/{body['workflow_id']}"
        pending = await client.get(body["status_url"])
        assert pending.status_code == 200
        assert pending.json()["status"] == "pending"
        await settle(store, running)
        status = (await client.get(body["status_url"])).json()
        assert (status["status"], status["progress"], status["current_stage"]) == (
            "running",
            40,
            "indextts.generate_speech",
        )
        assert status["stages"][0]["started_at"] == "2025-10-12T10:30:00Z"


async def test_sync_wait_that_runs_out_answers_202_and_loses_nothing(
    gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway(sync_wait_seconds=0.2) as client:
        response = await client.post("/v1/workflows", json=SPEECH)
        assert response.status_code == 202
        workflow_id = response.json()["workflow_id"]
        assert await store.get(workflow_id) is not None
        await settle(store, succeeded)
        result = await client.get(f"/v1/workflows/{workflow_id}")
        assert result.status_code == 200
        assert result.json()["output_path"] == SPEECH_OUTPUT["output_path"]


@pytest.mark.parametrize(
    ("code", "http_status"),
    [
        (ErrorCode.TASK_TIMEOUT, 408),
        (ErrorCode.INSUFFICIENT_MEMORY, 503),
        (ErrorCode.MODEL_NOT_READY, 503),
        (ErrorCode.GPU_UNAVAILABLE, 503),
        (ErrorCode.PROCESSING_ERROR, 500),
        (ErrorCode.INVALID_INPUT, 400),
    ],
)
async def test_a_failed_workflow_answers_with_its_codes_status(
    code: ErrorCode, http_status: int, gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        operator = asyncio.create_task(settle(store, failed_with(code)))
        response = await client.post("/v1/workflows", json=SPEECH)
        workflow = await operator
    assert response.status_code == http_status
    assert response.json() == {
        "status": "error",
        "error": f"{code.value} happened",
        "error_code": code.value,
        "task_id": f"{workflow.metadata.uid}/generate_speech/2",
        "workflow_id": workflow.metadata.name,
        "field": None,
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "workflow_config": {
                    "workflow_chain": ["indextts.generate_speech"],
                    "indextts_config": {"text": "", "output_path": "/share/workflows/output/a.wav"},
                }
            },
            "workflow_config.indextts_config.text",
        ),
        (
            {
                "workflow_config": {
                    "workflow_chain": ["indextts.generate_speech"],
                    "indextts_config": {"text": "x", "output_path": "/etc/passwd.wav"},
                }
            },
            "workflow_config.indextts_config.output_path",
        ),
        ({"workflow_config": {"workflow_chain": ["indextts.nope"]}}, "workflow_config.workflow_chain[0]"),
        ({}, "workflow_config"),
        (None, "body"),
    ],
)
async def test_bad_input_is_400_invalid_input_naming_the_field(
    body: Any, field: str, gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        response = await client.post("/v1/workflows", json=body)
    assert response.status_code == 400
    error = response.json()
    assert (error["status"], error["error_code"], error["field"]) == ("error", "INVALID_INPUT", field)
    assert error["error"].startswith(field)
    assert await store.list() == []  # nothing was created


@pytest.mark.parametrize("raw", [b"{not json", b"\xff\xfe", b""])
async def test_a_body_that_is_not_json_is_400(raw: bytes, gateway: GatewayFactory) -> None:
    async with gateway() as client:
        response = await client.post(
            "/v1/workflows", content=raw, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error_code"] == "INVALID_INPUT"


@pytest.mark.parametrize(("method", "path"), ID_ROUTES)
async def test_an_unknown_workflow_is_404_workflow_not_found(
    method: str, path: str, gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        known = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()
        response = await client.request(method, path.format(id="wf-missing"))
        assert response.status_code == 404
        assert response.json() == not_found_body("wf-missing")
        # A workflow deleted for good (after its time to live) answers the same.
        await store.purge(known["workflow_id"])
        gone = await client.request(method, path.format(id=known["workflow_id"]))
    assert gone.status_code == 404
    assert gone.json() == not_found_body(known["workflow_id"])


@pytest.mark.parametrize(("method", "path"), ID_ROUTES)
@pytest.mark.parametrize(
    "workflow_id",
    ["a%20b", "WF-UPPER", "wf_under", "-wf", "wf-", "a..b", "wf*", "%3E", "x" * 254],
)
async def test_a_malformed_workflow_id_is_400_naming_the_path_parameter(
    method: str, path: str, workflow_id: str, gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway() as client:
        response = await client.request(method, path.format(id=workflow_id))
    assert response.status_code == 400, response.text
    error = response.json()
    assert (error["status"], error["error_code"], error["field"]) == ("error", "INVALID_INPUT", "workflow_id")
    assert error["error"].startswith("workflow_id: ")
    assert "is not a workflow id" in error["error"]


@pytest.mark.parametrize("workflow_id", ["x", "wf-3c9a0d7e1b2f4a56", "hello.v2", "a" * 253])
async def test_any_kubernetes_object_name_is_looked_up(workflow_id: str, gateway: GatewayFactory) -> None:
    async with gateway() as client:
        response = await client.get(f"/v1/workflows/status/{workflow_id}")
    assert response.status_code == 404
    assert response.json()["error_code"] == "WORKFLOW_NOT_FOUND"


async def test_unknown_paths_and_methods_keep_invalid_input(gateway: GatewayFactory) -> None:
    async with gateway() as client:
        unknown = await client.get("/v2/nothing")
        nested = await client.get("/v1/workflows/wf-a/b")
        wrong_method = await client.put("/v1/workflows/wf-missing")
    assert unknown.status_code == 404
    assert (unknown.json()["status"], unknown.json()["error_code"]) == ("error", "INVALID_INPUT")
    assert unknown.json()["error"] == "GET /v2/nothing: Not Found"
    assert nested.status_code == 404
    assert nested.json()["error_code"] == "INVALID_INPUT"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error_code"] == "INVALID_INPUT"


async def test_the_openapi_description_names_the_id_errors(gateway: GatewayFactory) -> None:
    async with gateway() as client:
        openapi = (await client.get("/openapi.json")).json()
    codes = openapi["components"]["schemas"]["ErrorCode"]["enum"]
    assert "WORKFLOW_NOT_FOUND" in codes
    for method, path in ID_ROUTES:
        operation = openapi["paths"][path.replace("{id}", "{workflow_id}")][method.lower()]
        assert "WORKFLOW_NOT_FOUND" in operation["responses"]["404"]["description"], path
        assert "workflow_id" in operation["responses"]["400"]["description"], path


async def test_audio_streams_the_wav_once_speech_succeeded(
    gateway: GatewayFactory, store: LocalWorkflowStore, share: Path
) -> None:
    wav = share / "workflows" / "output" / "hello.wav"
    async with gateway() as client:
        accepted = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()
        wav.parent.mkdir(parents=True)  # as the worker would: a new workflow's output path is free
        wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
        audio_url = f"/v1/workflows/{accepted['workflow_id']}/audio"
        early = await client.get(audio_url)
        assert early.status_code == 400
        assert "pending" in early.json()["error"]
        await settle(store, succeeded)
        audio = await client.get(audio_url)
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.content == wav.read_bytes()


async def test_delete_removes_the_workflow(gateway: GatewayFactory, store: LocalWorkflowStore) -> None:
    async with gateway() as client:
        accepted = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()
        response = await client.delete(f"/v1/workflows/{accepted['workflow_id']}")
        assert response.status_code == 200
        marked = await store.get(accepted["workflow_id"])
        assert marked is not None
        assert (marked.metadata.model_extra or {}).get("deletionTimestamp")  # the operator finishes it


async def test_api_key_guards_everything_but_liveness(
    gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    async with gateway(api_key="s3cret", sync_wait_seconds=0) as client:
        assert (await client.get("/healthz")).status_code == 200
        for method, path in (
            ("POST", "/v1/workflows"),
            ("GET", "/v1/workflows/status/x"),
            ("GET", "/readyz"),
            ("GET", "/metrics"),
            ("GET", "/api/v1/monitoring/heartbeat/all"),
            ("GET", "/docs"),
            ("GET", "/openapi.json"),
            ("GET", "/no/such/path"),
        ):
            denied = await client.request(method, path, json=SPEECH)
            assert denied.status_code == 401, path
            assert denied.json()["error_code"] == "INVALID_INPUT"
            wrong = await client.request(method, path, json=SPEECH, headers={"X-API-Key": "guess"})
            assert wrong.status_code == 401, path
        ok = await client.post("/v1/workflows", json=SPEECH, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 202
        bearer = await client.get(
            f"/v1/workflows/status/{ok.json()['workflow_id']}", headers={"Authorization": "Bearer s3cret"}
        )
        assert bearer.status_code == 200


async def test_heartbeats_of_running_tasks(gateway: GatewayFactory, store: LocalWorkflowStore) -> None:
    async with gateway() as client:
        await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})
        await settle(store, running)
        body = (await client.get("/api/v1/monitoring/heartbeat/all")).json()
    assert (body["total_tasks"], body["active_tasks"]) == (1, 1)
    assert body["tasks"][0]["worker_id"] == "inference-0/cpu0"
    assert body["tasks"][0]["last_heartbeat"] == "2025-10-12T10:30:00Z"


async def test_operations_endpoints(gateway: GatewayFactory) -> None:
    async with gateway() as client:
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        await client.get("/v1/workflows/status/x")
        metrics = (await client.get("/metrics")).text
        assert (
            'tts_gateway_requests_total{method="GET",route="/v1/workflows/status/{workflow_id}",status="404"}'
            in metrics
        )
        openapi = (await client.get("/openapi.json")).json()
        assert "/v1/workflows" in openapi["paths"]
