"""Workflows through the gateway and with kubectl, on the real API server with the chart's RBAC:
every task, the status subresource and the finalizer, deletion mid-job, the time limit, the time to
live, a worker killed mid-job, the operator killed with work in flight, and the gateway's view of a
workflow the operator refused."""

from __future__ import annotations

import time
from typing import Any

import httpx
from kubernetes import client
from kubernetes.client import ApiException
from prometheus_client.parser import text_string_to_metric_families

from kube_testbed.components import wait_until
from kube_testbed.stack import Stack
from tts_api.constants import API_GROUP, API_VERSION, PLURAL

SPEECH = {
    "workflow_config": {
        "workflow_chain": ["indextts.generate_speech"],
        "indextts_config": {"text": "你好，世界。", "output_path": "/share/workflows/output/hello.wav"},
    }
}


def speech(output: str, text: str = "你好，世界。") -> dict[str, Any]:
    return {
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {"text": text, "output_path": f"/share/workflows/output/{output}.wav"},
        }
    }


def read(stack: Stack, name: str) -> dict[str, Any] | None:
    """The TTSWorkflow as the API server holds it (admin's view), None once it is gone."""
    with stack.api.api_client() as admin:
        try:
            body: Any = client.CustomObjectsApi(admin).get_namespaced_custom_object(
                API_GROUP, API_VERSION, stack.namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
    found: dict[str, Any] = body
    return found


def create(stack: Stack, name: str, spec: dict[str, Any]) -> None:
    """A TTSWorkflow made as a user makes one with kubectl (admin's rights, not the gateway's)."""
    body = {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "TTSWorkflow",
        "metadata": {"name": name},
        "spec": spec,
    }
    with stack.api.api_client() as admin:
        client.CustomObjectsApi(admin).create_namespaced_custom_object(
            API_GROUP, API_VERSION, stack.namespace, PLURAL, body
        )


def phase(stack: Stack, name: str) -> str | None:
    body = read(stack, name)
    return None if body is None else (body.get("status") or {}).get("phase")


def status_of(http: httpx.Client, workflow_id: str) -> dict[str, Any]:
    answer = http.get(f"/v1/workflows/status/{workflow_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def submit(http: httpx.Client, body: dict[str, Any]) -> str:
    answer = http.post("/v1/workflows?async=true", json=body)
    assert answer.status_code == 202, answer.text
    workflow_id: str = answer.json()["workflow_id"]
    return workflow_id


def jobs_run(stack: Stack) -> int:
    """generate_speech jobs that succeeded, over the running workers (their /metrics)."""
    total = 0.0
    for worker in stack.workers:
        for family in text_string_to_metric_families(httpx.get(worker.url + "/metrics", timeout=5).text):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == "tts_worker_jobs_total" and labels.get("outcome") == "succeeded":
                    total += sample.value if labels.get("task") == "indextts.generate_speech" else 0
    return int(total)


# --- every task ---------------------------------------------------------------------------------


def test_every_task_through_the_gateway(stack: Stack) -> None:
    with stack.client() as http:
        done = http.post("/v1/workflows", json=speech("every-task"))
        assert done.status_code == 200, done.text
        result = done.json()
        assert result["status"] == "success"
        assert result["output_path"] == "/share/workflows/output/every-task.wav"
        audio = http.get(f"/v1/workflows/{result['workflow_id']}/audio")
        assert audio.status_code == 200
        assert audio.content[:4] == b"RIFF"
        assert (stack.share_dir / "workflows" / "output" / "every-task.wav").read_bytes() == audio.content

        for task, key in (
            ("indextts.health_check", "gpu_lock"),
            ("indextts.get_model_info", "model_info"),
            ("indextts.list_voice_presets", "presets"),
        ):
            answer = http.post("/v1/workflows", json={"workflow_config": {"workflow_chain": [task]}})
            assert answer.status_code == 200, (task, answer.text)
            assert key in answer.json(), (task, answer.json())

        # The resource behind the answer: status through the subresource, generation untouched by it.
        body = read(stack, result["workflow_id"])
        assert body is not None
        assert body["status"]["phase"] == "Succeeded"
        assert body["metadata"]["generation"] == 1
        assert body["status"]["observedGeneration"] == 1


# --- deletion, time limit, time to live -----------------------------------------------------------


def test_deleting_a_running_workflow_cancels_its_job_and_removes_it(stack: Stack) -> None:
    with stack.slow_workers(30) as (worker,), stack.client() as http:
        workflow_id = submit(http, speech("deleted-mid-job"))
        wait_until(lambda: status_of(http, workflow_id)["status"] == "running", 30, "running")
        body = read(stack, workflow_id)
        assert body is not None
        assert body["metadata"].get("finalizers"), "the operator holds a finalizer while it runs"

        deleted = http.delete(f"/v1/workflows/{workflow_id}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"status": "deleted", "workflow_id": workflow_id}
        wait_until(lambda: read(stack, workflow_id) is None, 15, "the object gone from the API server")
        worker.wait_for_log(r"cancel", timeout=15)
        assert http.get(f"/v1/workflows/status/{workflow_id}").status_code == 404
    assert not (stack.share_dir / "workflows" / "output" / "deleted-mid-job.wav").exists(), (
        "the job did not finish"
    )


def test_a_workflow_past_its_time_limit_fails_with_task_timeout(stack: Stack) -> None:
    with stack.slow_workers(30):
        create(
            stack,
            "too-slow",
            {
                "timeoutSeconds": 3,
                "workflowConfig": {
                    "workflowChain": ["indextts.generate_speech"],
                    "indexttsConfig": {"text": "慢", "outputPath": "/share/workflows/output/too-slow.wav"},
                },
            },
        )
        wait_until(lambda: phase(stack, "too-slow") == "Failed", 20, "Failed after its time limit")
        body = read(stack, "too-slow")
        assert body is not None
        assert body["status"]["error"]["code"] == "TASK_TIMEOUT"
        assert "3 s" in body["status"]["error"]["message"]
        with stack.client() as http:
            assert http.get("/v1/workflows/too-slow").status_code == 408


def test_a_finished_workflow_is_deleted_after_its_time_to_live(stack: Stack) -> None:
    create(
        stack,
        "short-lived",
        {"ttlSecondsAfterFinished": 3, "workflowConfig": {"workflowChain": ["indextts.health_check"]}},
    )
    wait_until(lambda: phase(stack, "short-lived") == "Succeeded", 30, "Succeeded")
    finished = time.monotonic()
    wait_until(lambda: read(stack, "short-lived") is None, 15, "deleted after its time to live")
    assert time.monotonic() - finished >= 2.0, "not before its time to live"


def test_a_spec_edited_while_running_fails_the_workflow_and_cancels_its_job(stack: Stack) -> None:
    """On a server without CEL the edit is admitted; the operator holds the rule: the spec of an
    accepted workflow cannot change (docs/api.md, "Changing a workflow's spec")."""
    with stack.slow_workers(30) as (worker,), stack.client() as http:
        workflow_id = submit(http, speech("edited"))
        wait_until(lambda: status_of(http, workflow_id)["status"] == "running", 30, "running")
        with stack.api.api_client() as admin:
            client.CustomObjectsApi(admin).patch_namespaced_custom_object(
                API_GROUP,
                API_VERSION,
                stack.namespace,
                PLURAL,
                workflow_id,
                {"spec": {"workflowConfig": {"indexttsConfig": {"text": "别的话"}}}},
            )
        wait_until(lambda: phase(stack, workflow_id) == "Failed", 20, "Failed after the edit")
        body = read(stack, workflow_id)
        assert body is not None
        assert body["status"]["error"]["code"] == "INVALID_INPUT"
        assert "create a new TTSWorkflow" in body["status"]["error"]["message"]
        assert {c["type"]: c["reason"] for c in body["status"]["conditions"]}["Failed"] == "SpecChanged"
        worker.wait_for_log(r"cancel", timeout=15)
    assert not (stack.share_dir / "workflows" / "output" / "edited.wav").exists()


# --- faults ---------------------------------------------------------------------------------------


def test_a_worker_killed_mid_job_costs_an_attempt_not_the_workflow(stack: Stack) -> None:
    with stack.slow_workers(4) as (worker,), stack.client() as http:
        workflow_id = submit(http, speech("worker-killed"))
        wait_until(lambda: status_of(http, workflow_id)["status"] == "running", 30, "running")
        worker.kill()
        stack.retired.append(stack.workers.pop())
        stack.workers.append(stack.new_worker(synthetic_delay_seconds=0.2))
        wait_until(lambda: status_of(http, workflow_id)["status"] == "succeeded", 60, "succeeded")
        (stage,) = status_of(http, workflow_id)["stages"]
        assert stage["attempt"] == 2, "the killed attempt counted, the next one ran"
    assert (stack.share_dir / "workflows" / "output" / "worker-killed.wav").stat().st_size > 44


def test_the_operator_killed_with_work_in_flight_loses_and_doubles_nothing(stack: Stack) -> None:
    before = jobs_run(stack)
    with stack.client() as http:
        ids = [submit(http, speech(f"in-flight-{index}")) for index in range(20)]
        time.sleep(0.5)
        assert stack.operator is not None
        stack.operator.kill()
        stack.retired.append(stack.operator)
        stack.operator = None
        time.sleep(1)
        stack.restart_operator()
        wait_until(
            lambda: all(status_of(http, workflow_id)["status"] == "succeeded" for workflow_id in ids),
            90,
            "all 20 succeeded",
        )
    assert jobs_run(stack) - before == 20, "each workflow's speech was made exactly once"
    for index in range(20):
        assert (stack.share_dir / "workflows" / "output" / f"in-flight-{index}.wav").exists()


# --- what the gateway shows -----------------------------------------------------------------------


def test_the_gateway_shows_a_workflow_the_operator_refused(stack: Stack) -> None:
    """Admitted by the schema (the path's shape is fine), refused by the operator (outside the
    shared root): the gateway answers its Failed status, and statistics count it."""
    with stack.client() as http:
        failed_before = http.get("/api/v1/monitoring/statistics").json()
        create(
            stack,
            "refused-outside-share",
            {
                "workflowConfig": {
                    "workflowChain": ["indextts.generate_speech"],
                    "indexttsConfig": {"text": "你好", "outputPath": "/etc/passwd.wav"},
                }
            },
        )
        wait_until(lambda: phase(stack, "refused-outside-share") == "Failed", 20, "refused by the operator")
        status = status_of(http, "refused-outside-share")
        assert status["status"] == "failed"
        assert status["error_code"] == "INVALID_INPUT"
        result = http.get("/v1/workflows/refused-outside-share")
        assert result.status_code == 400
        assert result.json()["workflow_id"] == "refused-outside-share"
        after = http.get("/api/v1/monitoring/statistics").json()
    assert _failed_count(after) == _failed_count(failed_before) + 1


def _failed_count(statistics: dict[str, Any]) -> int:
    failed: int = statistics["system"]["failed_tasks"]
    return failed


def test_a_model_no_worker_serves_waits_saying_why_then_fails_on_the_api_server(stack: Stack) -> None:
    """An operator told that the pods are autoscaled, and that espeak is a model of the deployment,
    which none of the stack's workers serves: the TTSWorkflow says it waits for a worker, then fails."""
    waiting = {
        "TTS_MODELS": "synthetic,espeak",
        "TTS_OPERATOR_AUTOSCALING": "true",
        "TTS_OPERATOR_MAX_QUEUE_SECONDS": "4",
        "TTS_OPERATOR_TICK_SECONDS": "0.5",
    }
    stack.restart_operator(env=waiting)
    try:
        spec = {
            "workflowConfig": {
                "workflowChain": ["indextts.generate_speech"],
                "indexttsConfig": {
                    "text": "hello",
                    "outputPath": "/share/workflows/output/unserved.wav",
                    "model": "espeak",
                },
            }
        }
        create(stack, "unserved", spec)

        def reason() -> str | None:
            body = read(stack, "unserved") or {}
            conditions = (body.get("status") or {}).get("conditions", [])
            return next((c["reason"] for c in conditions if c["type"] == "Running"), None)

        wait_until(lambda: reason() == "WaitingForWorker", 20, "the wait said in a condition")
        queued = read(stack, "unserved")
        assert queued is not None
        assert queued["status"]["phase"] == "Queued"
        assert queued["status"]["stages"][0]["model"] == "espeak"
        assert queued["status"]["stages"][0]["noWorkerSince"]
        wait_until(lambda: phase(stack, "unserved") == "Failed", 20, "Failed once the wait ran out")
        failed = read(stack, "unserved")
        assert failed is not None
        assert failed["status"]["error"]["code"] == "GPU_UNAVAILABLE"
        assert (
            "no inference worker of model espeak started within 4 s" in failed["status"]["error"]["message"]
        )
        reasons = {c["type"]: c["reason"] for c in failed["status"]["conditions"]}
        assert reasons["Failed"] == "WaitingForWorker"
    finally:
        stack.restart_operator()
