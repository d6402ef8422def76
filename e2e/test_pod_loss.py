"""An inference pod deleted mid-job: the job is redelivered to another pod and the workflow succeeds."""

from __future__ import annotations

import pytest

from e2e.cluster import Cluster, eventually, unique_name
from e2e.conftest import SlowWorkers
from e2e.test_gpu_lock import speech

SYNTHESIS_SECONDS = 20.0


@pytest.mark.parametrize("graceful", [False, True], ids=["killed", "deleted-gracefully"])
def test_a_workflow_survives_the_loss_of_its_inference_pod(
    cluster: Cluster, slow_workers: SlowWorkers, graceful: bool
) -> None:
    with slow_workers(2, SYNTHESIS_SECONDS):
        name = unique_name("podloss")
        cluster.create(speech(name))

        def holder() -> str | None:
            status = cluster.workflow_status(name)
            running = status.stages and status.stages[0].state == "Running"
            return status.heartbeat.pod if running and status.heartbeat and status.heartbeat.pod else None

        pod = eventually(holder, timeout=120, what=f"{name} running on an inference pod")
        if graceful:
            cluster.kubectl("delete", "pod", pod, "--wait=false")
        else:
            cluster.kubectl("delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
        try:
            cluster.wait_for_condition(name, "Succeeded", timeout=240)
        except Exception as exc:
            raise AssertionError(f"{exc}\n{cluster.describe_workflow(name)}") from exc
        status = cluster.workflow_status(name)
        assert status.heartbeat is not None
        if not graceful:
            assert status.heartbeat.pod != pod, "another pod finished the job"
        # Deleted gracefully, the pod may finish the job within its shutdown grace, or hand it back.
        cluster.delete_workflow(name)
