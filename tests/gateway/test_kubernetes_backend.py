"""The gateway over an API server (kmock, the emulated one): TTSWorkflows created, read, waited on,
deleted; the GPU quota read from the namespace's ResourceQuota."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.kubernetes_backend import KubernetesBackend, WorkflowExistsError, open_kubernetes_backend
from gateway.settings import GatewaySettings
from gateway.worker_directory import open_worker_directory
from kube_access.client import api_client
from tests.gateway.conftest import ID_ROUTES, not_found_body
from tests.operator.cluster import emulated_api_server
from tts_api.constants import API_GROUP, API_VERSION, PLURAL, Phase
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow
from tts_api.validation import parse_request

NAMESPACE = "tts"
SPEECH = {
    "workflow_config": {
        "workflow_chain": ["indextts.generate_speech"],
        "indextts_config": {
            "text": "你好",
            "output_path": "/share/workflows/output/hello.wav",
            "emotion_alpha": 0.3,
        },
    }
}
RESULT = {
    "outputPath": "/share/workflows/output/hello.wav",
    "duration": 1.2,
    "sampleRate": 22050,
    "textLength": 2,
    "processingTime": 0.4,
    "modelInfo": {"modelType": "IndexTTS2", "modelVersion": "2.0", "device": "cuda:0"},
    "parameters": {"emotionAlpha": 0.3},
}


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    with emulated_api_server() as url:
        yield url


@pytest.fixture
def backend(api_url: str, unmounted_policy: ValidationPolicy) -> KubernetesBackend:
    return KubernetesBackend(api_client(api_url), NAMESPACE, unmounted_policy)


def custom(api_url: str) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client(api_url))


async def write_status(api_url: str, name: str, status: dict[str, Any]) -> None:
    """Play the operator: patch the workflow's status as it would."""
    await asyncio.to_thread(
        custom(api_url).patch_namespaced_custom_object_status,
        API_GROUP,
        API_VERSION,
        NAMESPACE,
        PLURAL,
        name,
        {"status": status},
    )


def finished(workflow: TTSWorkflow) -> bool:
    return workflow.status.phase.finished


async def test_create_get_list_delete(
    backend: KubernetesBackend, api_url: str, unmounted_policy: ValidationPolicy
) -> None:
    request = parse_request(SPEECH, policy=unmounted_policy)
    from tts_api.resource import TTSWorkflowSpec

    created = await backend.create("wf-crud", TTSWorkflowSpec.from_request(request, timeout_seconds=90))
    assert created.metadata.namespace == NAMESPACE
    stored = await asyncio.to_thread(
        custom(api_url).get_namespaced_custom_object, API_GROUP, API_VERSION, NAMESPACE, PLURAL, "wf-crud"
    )
    assert (
        stored["spec"]["workflowConfig"]["indexttsConfig"]["emotionAlpha"] == 0.3
    )  # camelCase in the cluster
    assert stored["spec"]["timeoutSeconds"] == 90
    assert (await backend.get("wf-crud")) == created
    assert await backend.delete("wf-crud")
    assert await backend.get("wf-crud") is None
    assert not await backend.delete("wf-crud")
    await backend.ping()


async def test_a_taken_name_is_refused(
    backend: KubernetesBackend, unmounted_policy: ValidationPolicy
) -> None:
    from tts_api.resource import TTSWorkflowSpec

    spec = TTSWorkflowSpec.from_request(parse_request(SPEECH, policy=unmounted_policy))
    await backend.create("wf-twice", spec)
    with pytest.raises(WorkflowExistsError):
        await backend.create("wf-twice", spec)
    await backend.delete("wf-twice")


async def test_wait_sees_the_operators_status(
    backend: KubernetesBackend, api_url: str, unmounted_policy: ValidationPolicy
) -> None:
    from tts_api.resource import TTSWorkflowSpec

    await backend.create(
        "wf-wait", TTSWorkflowSpec.from_request(parse_request(SPEECH, policy=unmounted_policy))
    )

    async def operator() -> None:
        await asyncio.sleep(0.3)
        await write_status(api_url, "wf-wait", {"phase": "Running"})
        await asyncio.sleep(0.3)
        await write_status(api_url, "wf-wait", {"phase": "Succeeded", "result": RESULT})

    writing = asyncio.create_task(operator())
    done = await backend.wait("wf-wait", finished, wait_seconds=10)
    await writing
    assert done is not None
    assert done.status.phase is Phase.SUCCEEDED
    assert done.status.result is not None
    assert done.status.result.sample_rate == 22050
    started = time.monotonic()
    running = await backend.wait("wf-wait", lambda w: False, wait_seconds=0.2)  # times out: latest state
    # The wait ends when asked, though the emulated API server never ends a watch by itself.
    assert time.monotonic() - started < 5
    assert running is not None
    assert running.status.phase is Phase.SUCCEEDED


async def test_gpu_quota_is_read_from_the_namespace(backend: KubernetesBackend, api_url: str) -> None:
    from kubernetes import client

    core: Any = client.CoreV1Api(api_client(api_url))
    assert await backend.gpu_quota() is None
    await asyncio.to_thread(
        core.create_namespaced_resource_quota,
        NAMESPACE,
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "gpu-lock", "namespace": NAMESPACE},
            "spec": {"hard": {"requests.nvidia.com/gpu": "2", "pods": "10"}},
            "status": {"hard": {"requests.nvidia.com/gpu": "2"}, "used": {"requests.nvidia.com/gpu": "1"}},
        },
    )
    quota = await backend.gpu_quota()
    assert quota is not None
    assert (quota.name, quota.hard, quota.used) == ("gpu-lock", 2, 1)


@contextlib.asynccontextmanager
async def gateway_over(
    api: Any, nats_url: str, policy: ValidationPolicy, namespace: str = NAMESPACE
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a gateway over the API server ``api`` (a Kubernetes API client) reaches."""
    backend = KubernetesBackend(api, namespace, policy)
    app = create_app(
        GatewaySettings(namespace=namespace),
        lambda: open_kubernetes_backend(api, namespace, policy),
        policy,
        lambda: open_worker_directory(nats_url, backend.gpu_quota),
    )
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as client,
    ):
        yield client


async def test_the_gateway_over_the_cluster(
    api_url: str, nats_url: str, unmounted_policy: ValidationPolicy
) -> None:
    async with gateway_over(api_client(api_url), nats_url, unmounted_policy) as client:
        accepted = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()
        name = accepted["workflow_id"]
        pending = (await client.get(f"/v1/workflows/status/{name}")).json()
        assert pending["status"] == "pending"

        answer = asyncio.create_task(client.post("/v1/workflows", json=SPEECH))
        fresh: list[str] = []
        for _ in range(100):  # the synchronous request's workflow: new, untouched by any operator
            listing = await asyncio.to_thread(
                custom(api_url).list_namespaced_custom_object, API_GROUP, API_VERSION, NAMESPACE, PLURAL
            )
            fresh = [
                b["metadata"]["name"]
                for b in listing["items"]
                if not b.get("status") and b["metadata"]["name"] != name
            ]
            if fresh:
                break
            await asyncio.sleep(0.05)
        await write_status(
            api_url,
            fresh[0],
            {
                "phase": "Succeeded",
                "stages": [
                    {"name": "indextts.generate_speech", "state": "Succeeded", "attempt": 1, "output": RESULT}
                ],
                "result": RESULT,
            },
        )
        response = await answer
        lock = (await client.get("/api/v1/monitoring/gpu-lock/health")).json()
        bad = await client.post("/v1/workflows", json={"workflow_config": {"workflow_chain": []}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["sample_rate"], body["output_path"]) == (
        "success",
        22050,
        "/share/workflows/output/hello.wav",
    )
    assert lock["quota"] == {"name": "gpu-lock", "hard": 2, "used": 1}
    assert bad.status_code == 400


async def test_an_unknown_or_malformed_id_over_the_cluster(
    api_url: str, nats_url: str, unmounted_policy: ValidationPolicy
) -> None:
    async with gateway_over(api_client(api_url), nats_url, unmounted_policy) as client:
        for method, path in ID_ROUTES:
            name = (await client.post("/v1/workflows", json=SPEECH, params={"async": "1"})).json()[
                "workflow_id"
            ]
            await asyncio.to_thread(  # gone from the API server, as after its time to live
                custom(api_url).delete_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                NAMESPACE,
                PLURAL,
                name,
            )
            for workflow_id in ("wf-missing", name):
                response = await client.request(method, path.format(id=workflow_id))
                assert response.status_code == 404, (method, path, response.text)
                assert response.json() == not_found_body(workflow_id)
            malformed = await client.request(method, path.format(id="a%20b"))
            assert malformed.status_code == 400, (method, path, malformed.text)
            assert (malformed.json()["error_code"], malformed.json()["field"]) == (
                "INVALID_INPUT",
                "workflow_id",
            )


def test_the_gateway_reads_the_preset_names_from_the_workers_file(
    tmp_path: Path, unmounted_policy: ValidationPolicy
) -> None:
    from gateway.cli import policy_with_presets
    from tts_api.errors import TTSError

    presets = tmp_path / "presets.yaml"
    presets.write_text("narrator:\n  name: Narrator\n  reference_audio: /share/voices/narrator.wav\n")
    policy = policy_with_presets(unmounted_policy, presets)
    assert policy.voice_presets == frozenset({"narrator"})
    body = {
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": "hi",
                "output_path": "/share/workflows/output/a.wav",
                "reference_audio": "nobody",
            },
        }
    }
    with pytest.raises(TTSError) as caught:
        parse_request(body, policy=policy)
    assert caught.value.field == "workflow_config.indextts_config.reference_audio"
    assert "narrator" in caught.value.message
    assert policy_with_presets(unmounted_policy, None) is unmounted_policy
