"""Every body the gateway answers has the reference's shape (checked against its own examples)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client

from gateway.presenters import result_response, status_response
from local_mode.record_store import LocalWorkflowStore
from nats_support.jetstream import ensure_jetstream
from tests.gateway.conftest import GatewayFactory, settle
from tests.gateway.reference_shapes import (
    REFERENCE_ERROR,
    REFERENCE_GPU_LOCK,
    REFERENCE_HEALTH,
    REFERENCE_HEARTBEATS,
    REFERENCE_MODEL_INFO,
    REFERENCE_PRESETS,
    REFERENCE_SPEECH,
    REFERENCE_STATISTICS,
    REFERENCE_STATUS,
    shape_errors,
)
from tests.gateway.test_app import SPEECH, failed_with, running, succeeded
from tests.gateway.test_presenters import OUTPUTS, done, workflow
from tts_api.constants import Phase, TaskName
from tts_api.errors import ErrorCode
from tts_api.registry import ModelState, WorkerEntry, WorkerState, encode_entry, registry_key


def test_the_check_catches_a_departure() -> None:
    assert shape_errors({"a": 1}, {"a": 1, "b": "x"}) == ["b: missing"]
    assert shape_errors({"a": "1"}, {"a": 1}) == ["a: string where the reference has number"]
    assert shape_errors({"a": [{"b": True}]}, {"a": [{"b": 1}]}) == [
        "a[0].b: boolean where the reference has number"
    ]
    assert shape_errors({"a": None}, {"a": 1}, nullable=frozenset({"a"})) == []
    assert shape_errors({"a": [{"b": None}]}, {"a": [{"b": 1}]}, nullable=frozenset({"a[].b"})) == []
    assert shape_errors({"a": [{"b": None}]}, {"a": [{"b": 1}]}) == [
        "a[0].b: null where the reference has number"
    ]


@pytest.mark.parametrize(
    ("task", "reference"),
    [
        (TaskName.GENERATE_SPEECH, REFERENCE_SPEECH),
        (TaskName.HEALTH_CHECK, REFERENCE_HEALTH),
        (TaskName.GET_MODEL_INFO, REFERENCE_MODEL_INFO),
        (TaskName.LIST_VOICE_PRESETS, REFERENCE_PRESETS),
    ],
)
def test_each_tasks_result_has_the_reference_shape(task: TaskName, reference: dict[str, Any]) -> None:
    response = result_response(workflow(Phase.SUCCEEDED, done(task)))
    assert response is not None
    body = response.model_dump(mode="json")
    # Parameters the request left out are null in ours (the reference's example shows one request).
    optional = frozenset({"parameters.reference_audio", "parameters.emotion_vector"})
    assert shape_errors(body, reference, nullable=optional) == []
    assert OUTPUTS[task]  # the outputs used are the reference's own example values


async def test_http_bodies_have_the_reference_shape(
    gateway: GatewayFactory, store: LocalWorkflowStore
) -> None:
    optional = frozenset({"parameters.reference_audio", "parameters.emotion_vector"})
    async with gateway() as client:
        operator = asyncio.create_task(settle(store, succeeded))
        speech = (await client.post("/v1/workflows", json=SPEECH)).json()
        await operator
        assert shape_errors(speech, REFERENCE_SPEECH, nullable=optional) == []

        operator = asyncio.create_task(settle(store, failed_with(ErrorCode.TASK_TIMEOUT)))
        error = (await client.post("/v1/workflows", json=SPEECH)).json()
        await operator
        assert shape_errors(error, REFERENCE_ERROR) == []

        accepted = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()
        await settle(store, running)
        status = (await client.get(accepted["status_url"])).json()
        # A stage has output once it finished (the reference's example shows one on a running stage).
        assert shape_errors(status, REFERENCE_STATUS, nullable=frozenset({"stages[].output"})) == []
        heartbeats = (await client.get("/api/v1/monitoring/heartbeat/all")).json()
        assert shape_errors(heartbeats, REFERENCE_HEARTBEATS) == []

        invalid = (await client.post("/v1/workflows", json={"workflow_config": {}})).json()
        assert shape_errors(invalid, REFERENCE_ERROR, nullable=frozenset({"task_id", "workflow_id"})) == []
        assert (invalid["task_id"], invalid["workflow_id"]) == (None, None)  # present, though unknown


def test_status_of_a_running_workflow_has_the_reference_shape() -> None:
    body = status_response(workflow(Phase.RUNNING, done(TaskName.GENERATE_SPEECH))).model_dump(mode="json")
    assert shape_errors(body, REFERENCE_STATUS) == []


async def test_monitoring_bodies_have_the_reference_shape(
    gateway: GatewayFactory, nats_client: Client, store: LocalWorkflowStore
) -> None:
    bucket = await ensure_jetstream(nats_client.jetstream())
    busy = WorkerEntry(
        worker_id="inference-0/gpu0",
        pod="inference-0",
        slot="gpu0",
        state=WorkerState.BUSY,
        job_id="u/generate_speech/1",
        job_started_at=datetime.now(UTC),
        engine="indextts2",
        model_state=ModelState.READY,
        gpu="NVIDIA H100",
        gpu_memory_used=6_200_000_000,
        gpu_memory_total=80_000_000_000,
        heartbeat_seconds=5,
    )
    await bucket.put(registry_key(busy.worker_id), encode_entry(busy))
    async with gateway() as client:
        lock = (await client.get("/api/v1/monitoring/gpu-lock/health")).json()
        stats = (await client.get("/api/v1/monitoring/statistics")).json()
    assert shape_errors(lock, REFERENCE_GPU_LOCK) == []
    assert (lock["status"], lock["total_locks"], lock["active_locks"]) == ("healthy", 1, 1)
    assert lock["locks"][0]["lock_key"] == "gpu_lock:inference-0/gpu0"
    # Nothing has finished yet: no rates to report.
    assert (
        shape_errors(
            stats,
            REFERENCE_STATISTICS,
            nullable=frozenset({"system.success_rate", "system.avg_processing_time"}),
        )
        == []
    )
    assert stats["workers"] == {"total": 1, "active": 1, "idle": 0}
    assert stats["gpu"] == {"utilization": 1.0, "memory_used": "6.2GB", "memory_total": "80.0GB"}
