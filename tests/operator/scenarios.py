"""The operator's end-to-end scenarios, written against a :class:`Cluster` and a NATS URL.

The same functions run against kmock (tests/operator/test_operator.py) and against any cluster in
KUBECONFIG (with the CRD installed); the e2e suite imports them. Each runs the real kopf operator,
a real nats-server, and the stub worker.
"""

from __future__ import annotations

import uuid
from typing import Any

import nats

from tests.operator.cluster import Cluster, eventually, operator_settings, phase_is, running_operator
from tests.operator.stub_worker import POD, StubWorker
from tts_api.nats_names import JOBS_STREAM
from tts_operator.metrics import DISPATCHES


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def speech_spec(**extra: Any) -> dict[str, Any]:
    return {
        "workflowConfig": {
            "workflowChain": ["indextts.generate_speech"],
            "indexttsConfig": {
                "text": "hello from the operator test",
                "outputPath": "/share/workflows/output/op.wav",
            },
        },
        **extra,
    }


def duplicates_dropped() -> float:
    """Jobs the operator (running in this process) re-published and JetStream dropped as duplicates."""
    total = 0.0
    for metric in DISPATCHES.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("result") == "duplicate":
                total += sample.value
    return total


async def events_posted(cluster: Cluster, name: str, *reasons: str) -> None:
    """Kubernetes Events with these reasons appear on the workflow (posted just after each write)."""

    async def all_there() -> bool:
        return set(reasons) <= set(await cluster.event_reasons(name))

    await eventually(all_there, within=5, what=f"events {reasons} on {name}")


def conditions(body: dict[str, Any] | None) -> dict[str, str]:
    return {c["type"]: c["status"] for c in ((body or {}).get("status") or {}).get("conditions", [])}


async def jobs_published(nats_url: str) -> int:
    """How many job messages JetStream ever stored (duplicates it dropped are not counted)."""
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(JOBS_STREAM)
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def created_workflow_succeeds(cluster: Cluster, nats_url: str) -> None:
    """A created TTSWorkflow reaches Succeeded with heartbeat, progress, result and conditions."""
    name = unique("hello")
    async with StubWorker(nats_url) as worker, running_operator(operator_settings(cluster, nats_url)):
        worker.start_pulling()
        await cluster.create(name, speech_spec())
        body = await cluster.wait_for(name, phase_is("Succeeded", "Failed"))
        assert body is not None
        status = body["status"]
        assert status["phase"] == "Succeeded", status
        assert status["progress"] == 100
        assert status["heartbeat"]["pod"] == POD
        assert status["heartbeat"]["gpu"] == "Stub GPU"
        assert status["heartbeat"]["lastHeartbeat"]
        assert status["result"]["outputPath"] == "/share/workflows/output/op.wav"
        assert status["stages"][0]["state"] == "Succeeded"
        assert status["stages"][0]["attempt"] == 1
        assert conditions(body) == {
            "Accepted": "True",
            "Running": "False",
            "Succeeded": "True",
            "Failed": "False",
        }
        assert worker.job_ids() == [f"{worker.jobs[0].workflow.uid}/generate_speech/1"]
        await events_posted(cluster, name, "Accepted", "Dispatched", "Started", "Succeeded")
    await cluster.cleanup(name)


async def invalid_spec_fails_with_invalid_input(cluster: Cluster, nats_url: str) -> None:
    """A spec the API server accepted but the models refuse fails at once, naming the field."""
    name = unique("invalid")
    spec = speech_spec()
    del spec["workflowConfig"]["indexttsConfig"]["outputPath"]
    from kubernetes.client import ApiException

    async with running_operator(operator_settings(cluster, nats_url)):
        refused = None
        try:
            await cluster.create(name, spec)
        except ApiException as exc:
            refused = exc.status
        if refused is not None:
            assert refused == 422  # a real API server may refuse it itself (the CRD's rules)
            return
        body = await cluster.wait_for(name, phase_is("Failed"))
        assert body is not None
        assert body["status"]["error"]["code"] == "INVALID_INPUT"
        assert "outputPath" in body["status"]["error"]["message"]
        assert conditions(body)["Accepted"] == "False"
    assert await jobs_published(nats_url) == 0
    await cluster.cleanup(name)


async def restart_mid_flight_dispatches_nothing_twice(cluster: Cluster, nats_url: str) -> None:
    """An operator restarted mid-flight re-announces the queued job (JetStream drops the duplicate),
    reads the events sent while it was down, and the workflow completes with one job run."""
    name = unique("restart")
    settings = operator_settings(cluster, nats_url)
    async with StubWorker(nats_url, mode="hold") as worker:
        async with running_operator(settings):
            await cluster.create(name, speech_spec())
            await cluster.wait_for(name, phase_is("Queued"))
        # The operator is down; the job waits in the queue. A second operator comes up and
        # re-announces the queued attempt under the same Nats-Msg-Id: JetStream drops it.
        before = duplicates_dropped()
        async with running_operator(settings):
            await eventually(lambda: duplicates_dropped() > before, what="the queued job was re-announced")
            worker.start_pulling()
            await cluster.wait_for(name, phase_is("Running"))
        # It goes down while the job runs; the worker finishes meanwhile, its events wait in JetStream.
        worker.release.set()
        await eventually(lambda: len(worker.completed) == 1, what="the worker finished")
        assert (await cluster.get(name) or {})["status"]["phase"] == "Running"
        async with running_operator(settings):
            body = await cluster.wait_for(name, phase_is("Succeeded", "Failed"))
        assert body is not None
        assert body["status"]["phase"] == "Succeeded", body["status"]
        assert body["status"]["stages"][0]["attempt"] == 1
        assert len(worker.jobs) == 1, worker.job_ids()
        assert worker.cancels == []
    assert await jobs_published(nats_url) == 1
    await cluster.cleanup(name)


async def silent_worker_redispatch_then_timeout(cluster: Cluster, nats_url: str) -> None:
    """A worker that goes silent: the stage is redispatched, then fails with TASK_TIMEOUT."""
    name = unique("silent")
    async with (
        StubWorker(nats_url, mode="silent") as worker,
        running_operator(operator_settings(cluster, nats_url)),
    ):
        worker.start_pulling()
        await cluster.create(name, speech_spec())
        try:
            body = await cluster.wait_for(name, phase_is("Failed", "Succeeded"), within=30)
        except AssertionError as exc:
            raise AssertionError(
                f"worker saw {worker.job_ids()} {worker.errors} {worker.cancelled_ids()}"
            ) from exc
        assert body is not None
        status = body["status"]
        assert status["phase"] == "Failed"
        assert status["error"]["code"] == "TASK_TIMEOUT"
        assert "no heartbeat" in status["error"]["message"]
        assert status["stages"][0]["attempt"] == 2
        uid = worker.jobs[0].workflow.uid
        assert worker.job_ids() == [f"{uid}/generate_speech/1", f"{uid}/generate_speech/2"]
        await eventually(lambda: len(worker.cancels) == 2, what="both attempts cancelled")
        assert worker.cancelled_ids() == worker.job_ids()
        await events_posted(cluster, name, "Retrying", "TimedOut")
    await cluster.cleanup(name)


async def deleting_a_running_workflow_cancels_its_job(cluster: Cluster, nats_url: str) -> None:
    """Deleting a running workflow cancels the job in flight; the workflow then goes away."""
    name = unique("delete")
    async with (
        StubWorker(nats_url, mode="hold") as worker,
        running_operator(operator_settings(cluster, nats_url)),
    ):
        worker.start_pulling()
        await cluster.create(name, speech_spec())
        await cluster.wait_for(name, phase_is("Running"))
        await cluster.delete(name)
        await cluster.wait_for(name, lambda body: body is None)
        await eventually(lambda: len(worker.cancels) == 1, what="the job was cancelled")
        assert worker.cancelled_ids() == worker.job_ids()
        assert len(worker.jobs) == 1
        # Its audio is queued for deletion by the inference pods (the operator mounts no share).
        await eventually(lambda: len(worker.deletions) == 1, what="its audio's deletion was queued")
        assert worker.deletions[0].workflow.uid == worker.jobs[0].workflow.uid
        assert worker.deletions[0].output_path == "/share/workflows/output/op.wav"


async def finished_workflow_expires_after_its_ttl(cluster: Cluster, nats_url: str) -> None:
    """ttlSecondsAfterFinished deletes a finished workflow."""
    name = unique("ttl")
    async with StubWorker(nats_url) as worker, running_operator(operator_settings(cluster, nats_url)):
        worker.start_pulling()
        await cluster.create(name, speech_spec(ttlSecondsAfterFinished=1))
        await cluster.wait_for(name, phase_is("Succeeded"))
        await cluster.wait_for(name, lambda body: body is None, within=15)
        await eventually(lambda: len(worker.deletions) == 1, what="its audio's deletion was queued")
        assert [d.workflow.name for d in worker.deletions] == [name]


async def chain_runs_in_order(cluster: Cluster, nats_url: str) -> None:
    """A chain's stages are dispatched one after the other, each with its output in status."""
    name = unique("chain")
    spec = speech_spec()
    spec["workflowConfig"]["workflowChain"] = ["indextts.health_check", "indextts.generate_speech"]
    async with StubWorker(nats_url) as worker, running_operator(operator_settings(cluster, nats_url)):
        worker.start_pulling()
        await cluster.create(name, spec)
        body = await cluster.wait_for(name, phase_is("Succeeded", "Failed"))
        assert body is not None
        status = body["status"]
        assert status["phase"] == "Succeeded", status
        assert [stage["state"] for stage in status["stages"]] == ["Succeeded", "Succeeded"]
        assert status["stages"][0]["output"]["status"] == "healthy"
        assert status["result"]["outputPath"] == "/share/workflows/output/op.wav"
        assert [job.task.value for job in worker.jobs] == [
            "indextts.health_check",
            "indextts.generate_speech",
        ]
    await cluster.cleanup(name)


async def worker_failure_fails_with_its_code(cluster: Cluster, nats_url: str) -> None:
    """A failure the worker reports as not retryable fails the workflow with the worker's error code."""
    name = unique("fail")
    async with (
        StubWorker(nats_url, mode="fail") as worker,
        running_operator(operator_settings(cluster, nats_url)),
    ):
        worker.start_pulling()
        await cluster.create(name, speech_spec())
        body = await cluster.wait_for(name, phase_is("Failed", "Succeeded"))
        assert body is not None
        assert body["status"]["error"]["code"] == "MODEL_NOT_READY"
        assert conditions(body)["Failed"] == "True"
        assert len(worker.jobs) == 1
    await cluster.cleanup(name)


SCENARIOS = [
    created_workflow_succeeds,
    invalid_spec_fails_with_invalid_input,
    restart_mid_flight_dispatches_nothing_twice,
    silent_worker_redispatch_then_timeout,
    deleting_a_running_workflow_cancels_its_job,
    finished_workflow_expires_after_its_ttl,
    chain_runs_in_order,
    worker_failure_fails_with_its_code,
]
