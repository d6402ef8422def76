"""The core routes each job to its model and waits, for a while, for a worker that serves it.

Pure decisions: the models live workers serve are an argument (``served``), as the runner passes
them from the worker registry; the registry and real workers are in test_worker_registry.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.operator.builders import POLICY, REF, SPEECH, at, spec
from tts_api.constants import ConditionType, Phase
from tts_api.errors import ErrorCode
from tts_api.resource import TTSWorkflowStatus
from tts_api.validation import parse_spec
from tts_operator.reconcile import (
    NO_WORKER_FOR_MODEL,
    WAITING_FOR_WORKER,
    Created,
    Decision,
    Limits,
    PublishCancel,
    PublishJob,
    Resumed,
    Tick,
    Workflow,
    reconcile,
    route,
)

LIMITS = Limits(max_queue_seconds=120)


def with_model(model: str | None) -> dict[str, Any]:
    body = spec()
    if model is not None:
        body["workflowConfig"]["indexttsConfig"]["model"] = model
    return body


def step(
    workflow: Workflow, given: Any, seconds: float, served: frozenset[str] | None, policy: Any = POLICY
) -> tuple[Workflow, Decision]:
    decision = reconcile(workflow, given, now=at(seconds), limits=LIMITS, policy=policy, served=served)
    if decision.status is not None:
        workflow = replace(workflow, status=decision.status)
    return workflow, decision


def jobs(decision: Decision) -> list[PublishJob]:
    return [action for action in decision.actions if isinstance(action, PublishJob)]


def running_condition(status: TTSWorkflowStatus) -> tuple[str, str]:
    condition = next(c for c in status.conditions if c.type == ConditionType.RUNNING)
    return condition.reason, condition.message


def test_a_job_is_for_the_model_named_else_the_default_else_the_first_configured() -> None:
    default = POLICY.model_copy(update={"default_model": "espeak"})
    narrowed = POLICY.model_copy(update={"models": ("indextts-2.5", "espeak")})
    for body, policy, expected in (
        (with_model("indextts-2.5"), default, "indextts-2.5"),
        (with_model(None), default, "espeak"),
        (with_model(None), narrowed, "indextts-2.5"),
        (with_model(None), POLICY, "indextts-2"),
    ):
        parsed = parse_spec(body, policy=policy)
        assert route(parsed, policy, None).model == expected
        workflow = Workflow(REF, body, TTSWorkflowStatus())
        _, decision = step(workflow, Created(), 0, None, policy)
        (job,) = jobs(decision)
        assert job.job.model == expected
        assert decision.status is not None
        assert decision.status.stages[0].model == expected


def test_a_job_for_a_model_no_worker_serves_waits_saying_so_then_fails_and_leaves_the_queue() -> None:
    workflow = Workflow(REF, with_model("indextts-2.5"), TTSWorkflowStatus())
    workflow, decision = step(workflow, Created(), 0, frozenset({"espeak"}))
    # Queued all the same: a worker for it may be starting (scaled from zero, a model loading).
    assert [j.job.model for j in jobs(decision)] == ["indextts-2.5"]
    stage = workflow.status.stages[0]
    assert stage.no_worker_since == at(0)
    reason, message = running_condition(workflow.status)
    assert reason == NO_WORKER_FOR_MODEL
    assert "queued for model indextts-2.5, which no live inference worker serves" in message
    assert "fails with MODEL_NOT_READY at 2026-01-01T12:02:00+00:00" in message
    # The ticks within the wait change nothing (no API write), and re-announce the same job.
    workflow, decision = step(workflow, Tick(), 60, frozenset({"espeak"}))
    assert decision.status is None
    assert [j.job.job_id for j in jobs(decision)] == ["uid-1/generate_speech/1"]

    workflow, decision = step(workflow, Tick(), 120, frozenset({"espeak"}))
    assert workflow.status.phase is Phase.FAILED
    assert workflow.status.error is not None
    assert workflow.status.error.code is ErrorCode.MODEL_NOT_READY
    assert workflow.status.error.message == (
        "no inference worker served model indextts-2.5 within 120 s (TTS_OPERATOR_MAX_QUEUE_SECONDS): "
        "start inference pods for it (TTS_WORKER_ENGINE=indextts25), or ask for a model that is "
        "served; models served now: espeak"
    )
    failed = next(c for c in workflow.status.conditions if c.type == ConditionType.FAILED)
    assert failed.reason == NO_WORKER_FOR_MODEL
    (cancel,) = [a for a in decision.actions if isinstance(a, PublishCancel)]
    assert cancel.dequeue is True  # no worker ever started it: it is taken off the queue
    assert not jobs(decision)


def test_a_worker_that_comes_within_the_wait_ends_it() -> None:
    workflow = Workflow(REF, with_model("indextts-2.5"), TTSWorkflowStatus())
    workflow, _ = step(workflow, Created(), 0, frozenset())
    assert running_condition(workflow.status)[0] == NO_WORKER_FOR_MODEL
    workflow, decision = step(workflow, Tick(), 30, frozenset({"indextts-2.5"}))
    assert decision.status is not None
    assert workflow.status.stages[0].no_worker_since is None
    assert running_condition(workflow.status) == (
        "Queued",
        "indextts.generate_speech attempt 1 is waiting for an inference pod",
    )
    # Gone again: the wait starts afresh, from when it was seen gone.
    workflow, _ = step(workflow, Tick(), 200, frozenset())
    assert workflow.status.stages[0].no_worker_since == at(200)
    workflow, _ = step(workflow, Tick(), 300, frozenset())
    assert workflow.status.phase is Phase.QUEUED


def test_nothing_is_judged_while_the_registry_is_not_known() -> None:
    workflow = Workflow(REF, with_model("indextts-2.5"), TTSWorkflowStatus())
    workflow, _ = step(workflow, Created(), 0, None)
    assert workflow.status.stages[0].no_worker_since is None
    workflow, decision = step(workflow, Tick(), 500, None)  # past the wait, within the timeout
    assert workflow.status.phase is Phase.QUEUED
    assert decision.status is None


def test_a_waiting_job_keeps_its_model_though_the_default_changes() -> None:
    """A restart under another ``TTS_DEFAULT_MODEL`` re-announces the attempt where it was queued."""
    first = POLICY.model_copy(update={"default_model": "espeak"})
    workflow = Workflow(REF, with_model(None), TTSWorkflowStatus())
    workflow, _ = step(workflow, Created(), 0, None, first)
    changed = POLICY.model_copy(update={"default_model": "synthetic"})
    workflow, decision = step(workflow, Resumed(), 5, None, changed)
    assert [j.job.model for j in jobs(decision)] == ["espeak"]


def test_a_record_queued_before_jobs_went_by_model_is_given_its_model() -> None:
    workflow = Workflow(REF, with_model(None), TTSWorkflowStatus())
    workflow, _ = step(workflow, Created(), 0, None)
    old = workflow.status.model_copy(deep=True)
    old.stages[0].model = None
    workflow = replace(workflow, status=old)
    workflow, decision = step(workflow, Resumed(), 5, None)
    assert decision.status is not None
    assert workflow.status.stages[0].model == "indextts-2"
    assert [j.job.model for j in jobs(decision)] == ["indextts-2"]
    assert workflow.status.current_stage == SPEECH


def test_where_the_pods_are_autoscaled_the_wait_is_for_a_pod_to_start_and_ends_in_gpu_unavailable() -> None:
    scaled = replace(LIMITS, autoscaling=True)

    def scaled_step(workflow: Workflow, given: Any, seconds: float) -> Workflow:
        decision = reconcile(
            workflow, given, now=at(seconds), limits=scaled, policy=POLICY, served=frozenset()
        )
        return replace(workflow, status=decision.status) if decision.status is not None else workflow

    workflow = scaled_step(Workflow(REF, with_model("indextts-2"), TTSWorkflowStatus()), Created(), 0)
    reason, message = running_condition(workflow.status)
    assert reason == WAITING_FOR_WORKER
    assert "waiting for an inference worker of model indextts-2: none is up (scaled to zero" in message
    workflow = scaled_step(workflow, Tick(), 120)
    assert workflow.status.phase is Phase.FAILED
    assert workflow.status.error is not None
    assert workflow.status.error.code is ErrorCode.GPU_UNAVAILABLE
    assert "no inference worker of model indextts-2 started within 120 s" in workflow.status.error.message
    assert "Pending on the GPU quota" in workflow.status.error.message


def test_the_workflows_timeout_does_not_count_the_wait_for_a_worker() -> None:
    body = {**with_model("indextts-2.5"), "timeoutSeconds": 100}
    workflow = Workflow(REF, body, TTSWorkflowStatus())
    workflow, _ = step(workflow, Created(), 0, frozenset())
    workflow, _ = step(workflow, Tick(), 90, frozenset())  # past half the timeout, still waiting
    # A worker comes at 110 s: the 110 s waited are not the workflow's.
    workflow, decision = step(workflow, Tick(), 110, frozenset({"indextts-2.5"}))
    assert decision.status is not None
    assert workflow.status.worker_wait_seconds == 110
    workflow, decision = step(workflow, Tick(), 200, frozenset({"indextts-2.5"}))
    assert workflow.status.phase is Phase.QUEUED  # 100 s of its own not spent yet (busy workers)
    workflow, _ = step(workflow, Tick(), 211, frozenset({"indextts-2.5"}))
    assert workflow.status.phase is Phase.FAILED
    assert workflow.status.error is not None
    assert workflow.status.error.code is ErrorCode.TASK_TIMEOUT
    assert "(not counting 110 s with no worker of its model)" in workflow.status.error.message
