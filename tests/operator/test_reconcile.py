"""The reconcile core, as tables of stories: each step is an input at a time, and what must follow.

A story runs its steps through :func:`reconcile` the way the runner does (the decided status becomes
the next step's status), and checks after each step the phase, the actions, and the error code.
Actions are written short: ``job speech/2 +4s`` (publish attempt 2 of generate_speech after 4 s),
``cancel speech/1``, ``event Retrying``, ``delete``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tests.operator.builders import (
    HEALTH,
    INFO,
    POLICY,
    PRESETS,
    REF,
    SPEECH,
    at,
    completed,
    failed,
    heartbeat,
    lost,
    progressed,
    spec,
    started,
)
from tts_api.constants import ConditionStatus, ConditionType, Phase, StageState
from tts_api.errors import ErrorCode
from tts_api.messages import WorkflowRef, decode_command, encode
from tts_api.resource import TTSWorkflowStatus
from tts_operator.reconcile import (
    SPEC_CHANGED,
    Action,
    Created,
    Decision,
    Deleted,
    DeleteWorkflow,
    Input,
    Limits,
    PostEvent,
    PublishCancel,
    PublishJob,
    Resumed,
    Tick,
    WorkerEventInput,
    Workflow,
    reconcile,
    spec_changed_message,
)

LIMITS = Limits(
    default_timeout_seconds=600,
    default_ttl_seconds=3600,
    heartbeat_stale_seconds=30,
    max_attempts=3,
    backoff_base_seconds=2,
    backoff_max_seconds=5,
)
ACCEPT = ["event Accepted", "job speech/1", "event Dispatched"]
# Few workers may be lost, or one attempt may fail: the two budgets, each made small in turn.
THREE_LOSSES = replace(LIMITS, max_worker_losses=3)
ONE_ATTEMPT = replace(LIMITS, max_attempts=1)


def short(action: Action) -> str:
    match action:
        case PublishJob(job=job, delay_seconds=delay):
            text = f"job {job.task.short.split('_')[-1]}/{job.attempt}"
            return text + (f" +{delay:g}s" if delay else "")
        case PublishCancel(cancel=cancel):
            _, task, attempt = cancel.job_id.split("/")
            return f"cancel {task.split('_')[-1]}/{attempt}"
        case PostEvent(reason=reason):
            return f"event {reason}"
        case DeleteWorkflow():
            return "delete"
    raise AssertionError(action)


def ev(event: Any) -> WorkerEventInput:
    return WorkerEventInput(event)


@dataclass(frozen=True)
class Step:
    given: Input
    when: float  # seconds after T0
    phase: Phase
    actions: list[str] = field(default_factory=list)
    error: ErrorCode | None = None
    ignored: bool = False


@dataclass(frozen=True)
class Story:
    name: str
    steps: list[Step]
    spec: dict[str, Any] = field(default_factory=spec)
    limits: Limits = LIMITS


def run_story(story: Story) -> tuple[TTSWorkflowStatus, list[Decision]]:
    status = TTSWorkflowStatus()
    decisions = []
    for number, step in enumerate(story.steps, 1):
        workflow = Workflow(ref=REF, spec=story.spec, status=status, generation=1)
        decision = reconcile(workflow, step.given, now=at(step.when), limits=story.limits, policy=POLICY)
        decisions.append(decision)
        where = f"{story.name}, step {number} ({step.given!r:.80})"
        status = decision.status or status
        # Statuses round-trip through the resource's camelCase, as they do through the API server.
        status = TTSWorkflowStatus.from_k8s(status.to_k8s())
        assert [short(a) for a in decision.actions] == step.actions, where
        assert status.phase == step.phase, where
        assert (status.error.code if status.error else None) == step.error, where
        assert (decision.ignored is not None) == step.ignored, f"{where}: {decision.ignored}"
        if step.ignored:
            assert decision.status is None, where
    return status, decisions


STORIES = [
    Story(
        "one stage succeeds",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 5, Phase.RUNNING, ["event Started"]),
            Step(ev(heartbeat(done=2)), 10, Phase.RUNNING),
            Step(Tick(), 30, Phase.RUNNING, ignored=True),
            Step(ev(completed()), 40, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
    ),
    Story(
        "duplicate and late events after completion are ignored",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(ev(started()), 2, Phase.RUNNING),  # a redelivered "started": heartbeat only
            Step(ev(completed()), 3, Phase.SUCCEEDED, ["event Succeeded"]),
            Step(ev(heartbeat()), 4, Phase.SUCCEEDED, ignored=True),
            Step(ev(completed()), 5, Phase.SUCCEEDED, ignored=True),
            Step(ev(failed()), 6, Phase.SUCCEEDED, ignored=True),
        ],
    ),
    Story(
        "a heartbeat that overtakes a lost 'started' starts the stage",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(heartbeat(done=1)), 3, Phase.RUNNING, ["event Started"]),
            Step(ev(started()), 4, Phase.RUNNING),
        ],
    ),
    Story(
        "a stale heartbeat redispatches; the superseded attempt's result is ignored",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(Tick(), 31, Phase.RUNNING, ignored=True),  # 30 s since the last sign of life: not yet
            Step(
                Tick(),
                32,
                Phase.QUEUED,
                ["cancel speech/1", "event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(ev(completed(attempt=1)), 33, Phase.QUEUED, ignored=True),
            Step(ev(started(attempt=2)), 35, Phase.RUNNING, ["event Started"]),
            Step(ev(heartbeat(attempt=1)), 36, Phase.RUNNING, ignored=True),
            Step(ev(completed(attempt=2)), 40, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
    ),
    Story(
        "a silent worker: redispatch with doubling backoff, then TASK_TIMEOUT when the losses run out",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(
                Tick(),
                40,
                Phase.QUEUED,
                ["cancel speech/1", "event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(ev(started(attempt=2)), 45, Phase.RUNNING, ["event Started"]),
            Step(
                Tick(),
                80,
                Phase.QUEUED,
                ["cancel speech/2", "event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(ev(heartbeat(attempt=3)), 85, Phase.RUNNING, ["event Started"]),
            Step(Tick(), 120, Phase.FAILED, ["cancel speech/3", "event TimedOut"], ErrorCode.TASK_TIMEOUT),
            Step(Tick(), 130, Phase.FAILED, error=ErrorCode.TASK_TIMEOUT, ignored=True),
        ],
        limits=THREE_LOSSES,
    ),
    Story(
        "a queued job waits for a GPU past the heartbeat limit, bounded by timeoutSeconds only",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            # Each tick re-announces the queued attempt: the same Nats-Msg-Id, dropped by JetStream
            # if the first publish landed; no new attempt, whatever the heartbeat limit.
            Step(Tick(), 100, Phase.QUEUED, ["job speech/1"]),
            Step(Tick(), 119, Phase.QUEUED, ["job speech/1"]),
            Step(Tick(), 120, Phase.FAILED, ["cancel speech/1", "event TimedOut"], ErrorCode.TASK_TIMEOUT),
            Step(ev(started()), 121, Phase.FAILED, error=ErrorCode.TASK_TIMEOUT, ignored=True),
        ],
        spec=spec(timeoutSeconds=120),
    ),
    Story(
        "the overall timeout fails a running workflow and cancels its job",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(ev(heartbeat()), 599, Phase.RUNNING),
            Step(Tick(), 600, Phase.FAILED, ["cancel speech/1", "event TimedOut"], ErrorCode.TASK_TIMEOUT),
        ],
    ),
    Story(
        "ticks re-announce a retry only when its backoff has ended",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(
                ev(failed(code=ErrorCode.GPU_UNAVAILABLE, retryable=True)),
                10,
                Phase.QUEUED,
                ["event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(Tick(), 11, Phase.QUEUED, ignored=True),
            Step(Resumed(), 11.5, Phase.QUEUED, ignored=True),
            Step(Tick(), 12, Phase.QUEUED, ["job speech/2"]),
            Step(Resumed(), 13, Phase.QUEUED, ["job speech/2"]),
        ],
    ),
    Story(
        "a job queued longer than the de-duplication window is not re-published",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(Tick(), 3239, Phase.QUEUED, ["job speech/1"]),
            Step(Tick(), 3240, Phase.QUEUED, ignored=True),
            Step(Resumed(), 3300, Phase.QUEUED, ignored=True),
        ],
        spec=spec(timeoutSeconds=7200),
    ),
    Story(
        "a retryable failure retries; the last attempt's failure fails with its own code",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(
                ev(failed(code=ErrorCode.INSUFFICIENT_MEMORY, retryable=True)),
                2,
                Phase.QUEUED,
                ["event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(
                ev(failed(attempt=2, code=ErrorCode.INSUFFICIENT_MEMORY, retryable=True)),
                5,
                Phase.QUEUED,
                ["event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(
                ev(failed(attempt=3, code=ErrorCode.INSUFFICIENT_MEMORY, retryable=True)),
                9,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.INSUFFICIENT_MEMORY,
            ),
        ],
    ),
    Story(
        "a worker that died: the worker its job is redelivered to reports it lost, once",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            # Redelivered after the ack deadline: reported as attempt 1's lost worker, not run.
            Step(ev(lost()), 31, Phase.QUEUED, ["event Retrying", "job speech/2 +2s", "event Dispatched"]),
            Step(ev(lost()), 31.5, Phase.QUEUED, ignored=True),  # the report again
            Step(Tick(), 32, Phase.QUEUED, ignored=True),  # queued, in its backoff: no staleness
            Step(ev(started(attempt=2)), 34, Phase.RUNNING, ["event Started"]),
            Step(ev(completed(attempt=2)), 36, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
    ),
    Story(
        "a stale heartbeat and the redelivery of the same attempt spend it once",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(
                Tick(),
                32,
                Phase.QUEUED,
                ["cancel speech/1", "event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(ev(lost(attempt=1)), 33, Phase.QUEUED, ignored=True),  # superseded
            Step(ev(started(attempt=2)), 35, Phase.RUNNING, ["event Started"]),
            Step(
                ev(lost(attempt=2)),
                36,
                Phase.QUEUED,
                ["event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
        ],
    ),
    Story(
        "a worker that died before 'started' loses the queued attempt",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(lost()), 31, Phase.QUEUED, ["event Retrying", "job speech/2 +2s", "event Dispatched"]),
        ],
    ),
    Story(
        "churn: workers lost under a healthy job spend none of its attempts, however many",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(ev(lost()), 31, Phase.QUEUED, ["event Retrying", "job speech/2 +2s", "event Dispatched"]),
            Step(ev(started(attempt=2)), 34, Phase.RUNNING, ["event Started"]),
            # Silent: its pod's node went away; counted as a lost worker too.
            Step(
                Tick(),
                70,
                Phase.QUEUED,
                ["cancel speech/2", "event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(
                ev(lost(attempt=3)),
                80,
                Phase.QUEUED,
                ["event Retrying", "job speech/4 +5s", "event Dispatched"],
            ),
            Step(ev(started(attempt=4)), 86, Phase.RUNNING, ["event Started"]),
            Step(ev(completed(attempt=4)), 87, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
        limits=ONE_ATTEMPT,
    ),
    Story(
        "the job's own failure after lost workers spends the one attempt it has",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(lost()), 31, Phase.QUEUED, ["event Retrying", "job speech/2 +2s", "event Dispatched"]),
            Step(
                ev(lost(attempt=2)),
                62,
                Phase.QUEUED,
                ["event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(
                ev(failed(attempt=3, code=ErrorCode.INSUFFICIENT_MEMORY, retryable=True)),
                70,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.INSUFFICIENT_MEMORY,
            ),
        ],
        limits=ONE_ATTEMPT,
    ),
    Story(
        "failures and lost workers are counted apart, each against its own budget",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(
                ev(failed(code=ErrorCode.GPU_UNAVAILABLE, retryable=True)),
                1,
                Phase.QUEUED,
                ["event Retrying", "job speech/2 +2s", "event Dispatched"],
            ),
            Step(
                ev(lost(attempt=2)),
                40,
                Phase.QUEUED,
                ["event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(
                ev(lost(attempt=3)),
                80,
                Phase.QUEUED,
                ["event Retrying", "job speech/4 +5s", "event Dispatched"],
            ),
            Step(
                ev(failed(attempt=4, code=ErrorCode.GPU_UNAVAILABLE, retryable=True)),
                90,
                Phase.QUEUED,
                ["event Retrying", "job speech/5 +5s", "event Dispatched"],
            ),
            Step(
                ev(lost(attempt=5)),
                130,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.PROCESSING_ERROR,
            ),
        ],
        limits=THREE_LOSSES,
    ),
    Story(
        "a job that stops every worker it lands on fails once the lost workers reach their budget",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(ev(lost()), 31, Phase.QUEUED, ["event Retrying", "job speech/2 +2s", "event Dispatched"]),
            Step(ev(started(attempt=2)), 34, Phase.RUNNING, ["event Started"]),
            Step(
                ev(lost(attempt=2)),
                64,
                Phase.QUEUED,
                ["event Retrying", "job speech/3 +4s", "event Dispatched"],
            ),
            Step(ev(started(attempt=3)), 69, Phase.RUNNING, ["event Started"]),
            Step(ev(lost(attempt=3)), 99, Phase.FAILED, ["event Failed"], ErrorCode.PROCESSING_ERROR),
            Step(ev(started(attempt=4)), 100, Phase.FAILED, error=ErrorCode.PROCESSING_ERROR, ignored=True),
        ],
        limits=THREE_LOSSES,
    ),
    Story(
        "a hand-back on shutdown spends nothing: the same attempt starts on another pod",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            # The leaving pod sends no event; the copy it put back is started by another pod.
            Step(ev(started(attempt=1)), 20, Phase.RUNNING),
            Step(ev(completed(attempt=1)), 25, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
    ),
    Story(
        "a user-caused failure is final at once, with attempts left",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(
                ev(failed(code=ErrorCode.INVALID_INPUT)),
                2,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.INVALID_INPUT,
            ),
        ],
    ),
    Story(
        "a failure that is not retryable fails at once",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(
                ev(failed(code=ErrorCode.MODEL_NOT_READY)),
                2,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.MODEL_NOT_READY,
            ),
        ],
    ),
    Story(
        "a chain runs its stages in order",
        [
            Step(Created(), 0, Phase.QUEUED, ["event Accepted", "job check/1", "event Dispatched"]),
            Step(ev(started(HEALTH)), 1, Phase.RUNNING, ["event Started"]),
            Step(ev(started(INFO)), 1, Phase.RUNNING, ignored=True),  # not the current stage
            Step(
                ev(completed(HEALTH)),
                2,
                Phase.QUEUED,
                ["event StageSucceeded", "job info/1", "event Dispatched"],
            ),
            Step(
                ev(completed(HEALTH)), 3, Phase.QUEUED, ignored=True
            ),  # a duplicate of the last stage's result
            Step(ev(started(INFO)), 3, Phase.RUNNING, ["event Started"]),
            Step(
                ev(completed(INFO)),
                4,
                Phase.QUEUED,
                ["event StageSucceeded", "job presets/1", "event Dispatched"],
            ),
            Step(ev(completed(PRESETS)), 5, Phase.SUCCEEDED, ["event Succeeded"]),
        ],
        spec=spec(HEALTH, INFO, PRESETS),
    ),
    Story(
        "the first failure in a chain fails the workflow; later stages never run",
        [
            Step(Created(), 0, Phase.QUEUED, ["event Accepted", "job check/1", "event Dispatched"]),
            Step(
                ev(failed(HEALTH, code=ErrorCode.GPU_UNAVAILABLE)),
                1,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.GPU_UNAVAILABLE,
            ),
            Step(ev(started(SPEECH)), 2, Phase.FAILED, error=ErrorCode.GPU_UNAVAILABLE, ignored=True),
        ],
        spec=spec(HEALTH, SPEECH),
    ),
    Story(
        "an invalid spec (kubectl apply skips the gateway) fails at once with INVALID_INPUT",
        [
            Step(Created(), 0, Phase.FAILED, ["event Failed"], ErrorCode.INVALID_INPUT),
            Step(Resumed(), 1, Phase.FAILED, error=ErrorCode.INVALID_INPUT, ignored=True),
            Step(Tick(), 2, Phase.FAILED, error=ErrorCode.INVALID_INPUT, ignored=True),
        ],
        spec={
            "workflowConfig": {"workflowChain": ["indextts.generate_speech"], "indexttsConfig": {"text": "x"}}
        },
    ),
    Story(
        "deleting a running workflow cancels its job",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(started()), 1, Phase.RUNNING, ["event Started"]),
            Step(Deleted(), 2, Phase.CANCELLED, ["cancel speech/1", "event Cancelled"]),
            Step(Deleted(), 3, Phase.CANCELLED, ignored=True),
            Step(ev(completed()), 4, Phase.CANCELLED, ignored=True),
        ],
    ),
    Story(
        "deleting a finished workflow cancels nothing",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(completed()), 1, Phase.SUCCEEDED, ["event Succeeded"]),
            Step(Deleted(), 2, Phase.SUCCEEDED, ignored=True),
        ],
    ),
    Story(
        "a restart re-publishes a queued stage's recorded attempt, and nothing for a running one",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(Created(), 1, Phase.QUEUED, ["job speech/1"]),  # kopf re-ran the create handler
            Step(Resumed(), 2, Phase.QUEUED, ["job speech/1"]),
            Step(ev(started()), 3, Phase.RUNNING, ["event Started"]),
            Step(Resumed(), 4, Phase.RUNNING, ignored=True),
        ],
    ),
    Story(
        "a resumed workflow that was never accepted is accepted",
        [Step(Resumed(), 0, Phase.QUEUED, ACCEPT)],
    ),
    Story(
        "a finished workflow is deleted ttlSecondsAfterFinished after it finished",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(ev(completed()), 10, Phase.SUCCEEDED, ["event Succeeded"]),
            Step(Tick(), 69, Phase.SUCCEEDED, ignored=True),
            Step(Tick(), 70, Phase.SUCCEEDED, ["delete"]),
        ],
        spec=spec(ttlSecondsAfterFinished=60),
    ),
    Story(
        "the default time to live applies when the spec sets none",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(Deleted(), 0, Phase.CANCELLED, ["cancel speech/1", "event Cancelled"]),
            Step(Tick(), 3599, Phase.CANCELLED, ignored=True),
            Step(Tick(), 3600, Phase.CANCELLED, ["delete"]),
        ],
    ),
    Story(
        "events of another workflow with the same name (deleted and re-created) are ignored",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(
                ev(started(ref=WorkflowRef(uid="uid-0", name="hello", namespace="default"))),
                1,
                Phase.QUEUED,
                ignored=True,
            ),
        ],
    ),
    Story(
        "a result this operator cannot read fails the workflow with PROCESSING_ERROR",
        [
            Step(Created(), 0, Phase.QUEUED, ACCEPT),
            Step(
                ev(completed(output={"duration": 1})),
                1,
                Phase.FAILED,
                ["event Failed"],
                ErrorCode.PROCESSING_ERROR,
            ),
        ],
    ),
]


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_story(story: Story) -> None:
    run_story(story)


# --- what the stories leave in status ------------------------------------------------------------


def conditions(status: TTSWorkflowStatus) -> dict[str, str]:
    return {c.type.value: c.status.value for c in status.conditions}


def test_success_leaves_result_progress_heartbeat_and_conditions() -> None:
    status, _ = run_story(STORIES[0])
    assert status.progress == 100
    assert status.result is not None
    assert status.result.output_path == "/share/workflows/output/hello.wav"
    assert status.heartbeat is not None
    assert status.heartbeat.pod == "pod-1"
    assert status.heartbeat.gpu == "NVIDIA H100"
    assert status.heartbeat.last_heartbeat == at(10)
    assert status.stages[0].state == StageState.SUCCEEDED
    assert status.stages[0].output is not None
    assert status.stages[0].output["outputPath"] == "/share/workflows/output/hello.wav"
    assert status.accepted_at == at(0)
    assert status.started_at == at(5)
    assert status.finished_at == at(40)
    assert status.current_stage is None
    assert conditions(status) == {
        "Accepted": "True",
        "Running": "False",
        "Succeeded": "True",
        "Failed": "False",
    }


def test_conditions_on_failure_name_the_error() -> None:
    status, _ = run_story(next(s for s in STORIES if s.name.startswith("a failure that is not")))
    assert conditions(status) == {
        "Accepted": "True",
        "Running": "False",
        "Succeeded": "False",
        "Failed": "True",
    }
    failed_condition = status.condition(ConditionType.FAILED)
    assert failed_condition is not None
    assert failed_condition.reason == "ModelNotReady"
    assert status.stages[0].error is not None
    assert status.stages[0].error.code == ErrorCode.MODEL_NOT_READY


def test_invalid_spec_names_the_field_and_is_not_accepted() -> None:
    status, _ = run_story(next(s for s in STORIES if s.name.startswith("an invalid spec")))
    assert status.error is not None
    assert status.error.message.startswith("spec.workflowConfig")
    assert "outputPath" in status.error.message
    accepted = status.condition(ConditionType.ACCEPTED)
    assert accepted is not None
    assert accepted.status == ConditionStatus.FALSE
    assert accepted.reason == "InvalidInput"


def story(name: str) -> Story:
    return next(s for s in STORIES if s.name.startswith(name))


def test_timeout_after_silent_workers_says_what_happened() -> None:
    status, _ = run_story(story("a silent worker"))
    assert status.error is not None
    assert "no heartbeat from pod pod-3" in status.error.message
    assert "gave up: 3 workers were lost while running it" in status.error.message
    assert status.stages[0].attempt == 3
    assert status.stages[0].worker_losses == 3
    assert status.stages[0].state == StageState.FAILED


def test_lost_workers_are_recorded_and_each_retry_says_which_budget_it_spent() -> None:
    status, decisions = run_story(story("churn:"))
    assert status.stages[0].attempt == 4
    assert status.stages[0].worker_losses == 3
    retrying = [
        a.message for d in decisions for a in d.actions if isinstance(a, PostEvent) and a.reason == "Retrying"
    ]
    assert len(retrying) == 3
    assert retrying[0].startswith("indextts.generate_speech attempt 1 lost its worker (PROCESSING_ERROR: ")
    assert retrying[0].endswith("attempt 2 in 2 s (worker lost 1 of 8 times; no attempt spent)")
    assert retrying[2].endswith("(worker lost 3 of 8 times; no attempt spent)")


def test_a_failure_after_lost_workers_says_both_counts() -> None:
    status, _ = run_story(story("the job's own failure after lost workers"))
    assert status.error is not None
    assert status.error.message == (
        "INSUFFICIENT_MEMORY in the test (gave up after 1 attempt; 2 more ended with their worker lost)"
    )
    status, decisions = run_story(story("failures and lost workers are counted apart"))
    retrying = [
        a.message for d in decisions for a in d.actions if isinstance(a, PostEvent) and a.reason == "Retrying"
    ]
    assert retrying[0].endswith("(attempt 1 of 3 failed)")
    assert retrying[3].endswith("(attempt 2 of 3 failed)")
    assert status.stages[0].worker_losses == 3


def test_a_job_that_stops_every_worker_it_lands_on_says_so() -> None:
    status, _ = run_story(story("a job that stops every worker"))
    assert status.error is not None
    assert status.error.code == ErrorCode.PROCESSING_ERROR
    assert status.error.message == (
        "PROCESSING_ERROR in the test (gave up: 3 workers were lost while running it; a job that stops "
        "every worker it runs on (a crash or an out-of-memory kill on this input) ends this way: check "
        "the inference pods' logs and restarts, and change the input if it is the cause)"
    )
    failed_condition = status.condition(ConditionType.FAILED)
    assert failed_condition is not None
    assert failed_condition.message == status.error.message


def test_the_workflows_timeout_names_the_workers_lost_under_it() -> None:
    limits = replace(LIMITS, max_worker_losses=100)
    status = TTSWorkflowStatus()
    for given, when in ((Created(), 0), (ev(lost()), 31), (ev(lost(attempt=2)), 62), (Tick(), 600)):
        decision = reconcile(Workflow(REF, spec(), status), given, now=at(when), limits=limits, policy=POLICY)
        status = decision.status or status
    assert status.phase == Phase.FAILED
    assert status.error is not None
    assert status.error.code == ErrorCode.TASK_TIMEOUT
    assert status.error.message.endswith(
        "; 2 workers were lost while running it: check the inference pods' logs and restarts"
    )


def test_a_report_without_worker_lost_from_an_older_worker_spends_an_attempt() -> None:
    once = reconcile(
        Workflow(REF, spec(), TTSWorkflowStatus()), Created(), now=at(0), limits=ONE_ATTEMPT, policy=POLICY
    )
    assert once.status is not None
    decision = reconcile(
        Workflow(REF, spec(), once.status),
        ev(failed(retryable=True)),
        now=at(31),
        limits=ONE_ATTEMPT,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.FAILED


def test_retryable_failures_are_retried_with_doubling_backoff_then_give_up() -> None:
    status, decisions = run_story(next(s for s in STORIES if s.name.startswith("a retryable failure")))
    delays = [a.delay_seconds for d in decisions for a in d.actions if isinstance(a, PublishJob)]
    assert delays == [0, LIMITS.backoff(1), LIMITS.backoff(2)] == [0, 2, 4]
    assert status.stages[0].attempt == LIMITS.max_attempts == 3
    assert status.error is not None
    assert status.error.message == "INSUFFICIENT_MEMORY in the test (gave up after 3 attempts)"


def test_with_one_attempt_the_first_retryable_failure_gives_up() -> None:
    once = Limits(max_attempts=1)
    accepted = reconcile(
        Workflow(REF, spec(), TTSWorkflowStatus()), Created(), now=at(0), limits=once, policy=POLICY
    )
    assert accepted.status is not None
    decision = reconcile(
        Workflow(REF, spec(), accepted.status),
        ev(failed(retryable=True)),
        now=at(1),
        limits=once,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.FAILED
    assert decision.status.error is not None
    assert decision.status.error.message.endswith("(gave up after 1 attempt)")


@pytest.mark.parametrize(
    ("story", "kind"),
    [
        ("a silent worker", "heartbeat"),
        ("a job that stops every worker", None),
        ("the overall timeout", "workflow"),
        ("a queued job waits", "workflow"),
        ("a retryable failure retries", None),
        ("deleting a running workflow", None),
    ],
)
def test_the_decision_says_which_limit_timed_the_workflow_out(story: str, kind: str | None) -> None:
    _, decisions = run_story(next(s for s in STORIES if s.name.startswith(story)))
    assert [d.timed_out for d in decisions if d.timed_out] == ([kind] if kind else [])


def test_chain_keeps_each_stage_output_and_later_stages_are_cancelled_on_failure() -> None:
    status, _ = run_story(next(s for s in STORIES if s.name == "a chain runs its stages in order"))
    assert [s.state for s in status.stages] == [StageState.SUCCEEDED] * 3
    assert all(s.output for s in status.stages)
    assert status.result is None  # no speech in this chain
    status, _ = run_story(next(s for s in STORIES if s.name.startswith("the first failure")))
    assert [s.state for s in status.stages] == [StageState.FAILED, StageState.CANCELLED]


@pytest.mark.parametrize(
    ("stage_index", "done", "expected"),
    [(0, 0, 0), (0, 2, 16), (1, 2, 50), (2, 4, 100)],
)
def test_progress_spans_the_whole_chain(stage_index: int, done: int, expected: int) -> None:
    chain = [HEALTH, INFO, SPEECH]
    status = TTSWorkflowStatus()
    limits = LIMITS
    workflow_spec = spec(*chain)
    status = (
        reconcile(
            Workflow(REF, workflow_spec, status), Created(), now=at(0), limits=limits, policy=POLICY
        ).status
        or status
    )
    for task in chain[:stage_index]:
        after = reconcile(
            Workflow(REF, workflow_spec, status), ev(completed(task)), now=at(1), limits=limits, policy=POLICY
        )
        assert after.status is not None
        status = after.status
    task = chain[stage_index]
    decision = reconcile(
        Workflow(REF, workflow_spec, status),
        ev(progressed(task, done=done, total=4)),
        now=at(2),
        limits=limits,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.progress == expected


def test_progress_never_goes_back_within_an_attempt() -> None:
    status, _ = run_story(
        Story(
            "p",
            [
                Step(Created(), 0, Phase.QUEUED, ACCEPT),
                Step(ev(progressed(done=3)), 1, Phase.RUNNING, ["event Started"]),
            ],
        )
    )
    decision = reconcile(
        Workflow(REF, spec(), status), ev(heartbeat(done=1)), now=at(2), limits=LIMITS, policy=POLICY
    )
    assert decision.status is not None
    assert decision.status.progress == 75
    assert decision.batchable


def test_a_replayed_dispatch_is_the_same_message() -> None:
    """Created, a re-run Created and Resumed publish byte-identical jobs with one Nats-Msg-Id."""
    first = reconcile(
        Workflow(REF, spec(), TTSWorkflowStatus()), Created(), now=at(0), limits=LIMITS, policy=POLICY
    )
    assert first.status is not None
    recorded = TTSWorkflowStatus.from_k8s(first.status.to_k8s())
    again = [
        reconcile(Workflow(REF, spec(), recorded), given, now=at(50), limits=LIMITS, policy=POLICY)
        for given in (Created(), Resumed())
    ]
    jobs = [next(a for a in d.actions if isinstance(a, PublishJob)).job for d in (first, *again)]
    assert {job.job_id for job in jobs} == {"uid-1/generate_speech/1"}
    assert len({encode(job) for job in jobs}) == 1
    job = decode_command(encode(jobs[0]))
    assert job.kind == "job"
    assert job.config is not None
    assert job.config.output_path == "/share/workflows/output/hello.wav"
    # The timeout, and the longest wait for a worker of its model, which the timeout does not count.
    assert job.deadline == at(600 + LIMITS.max_queue_seconds)


def test_heartbeats_are_batchable_and_transitions_are_not() -> None:
    _, decisions = run_story(STORIES[0])
    assert [d.batchable for d in decisions] == [False, False, True, False, False]


# --- the spec is immutable once accepted ----------------------------------------------------------


def edited_spec(**config: Any) -> dict[str, Any]:
    """The default spec with ``indexttsConfig`` fields changed (an edit ``kubectl edit`` makes)."""
    changed = spec()
    changed["workflowConfig"]["indexttsConfig"].update(config)
    return changed


def running_at_generation_one() -> TTSWorkflowStatus:
    """Accepted at generation 1, its first attempt running; as read back from the API server."""
    status = TTSWorkflowStatus()
    for given, when in ((Created(), 0), (ev(started()), 1)):
        decision = reconcile(
            Workflow(REF, spec(), status, generation=1), given, now=at(when), limits=LIMITS, policy=POLICY
        )
        assert decision.status is not None
        status = TTSWorkflowStatus.from_k8s(decision.status.to_k8s())
    assert (status.phase, status.observed_generation) == (Phase.RUNNING, 1)
    return status


EDITS = {
    "a valid edit": edited_spec(text="something else entirely"),
    "an edit into an invalid spec": edited_spec(emotionAlpha=2),
}
EDIT_INPUTS: dict[str, Input] = {
    "tick": Tick(),
    "resume": Resumed(),
    "worker event": ev(heartbeat(done=1)),
}


@pytest.mark.parametrize("given", EDIT_INPUTS.values(), ids=EDIT_INPUTS.keys())
@pytest.mark.parametrize("edited", EDITS.values(), ids=EDITS.keys())
def test_a_spec_edited_after_acceptance_fails_the_workflow_and_cancels_its_job(
    edited: dict[str, Any], given: Input
) -> None:
    decision = reconcile(
        Workflow(REF, edited, running_at_generation_one(), generation=2),
        given,
        now=at(5),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.status is not None
    status = TTSWorkflowStatus.from_k8s(decision.status.to_k8s())
    message = (
        "the spec changed after the workflow was accepted (generation 2, accepted at 1); "
        "a TTSWorkflow's spec cannot change: create a new TTSWorkflow"
    )
    assert message == spec_changed_message(2, 1)
    assert status.phase == Phase.FAILED
    assert status.error is not None
    assert (status.error.code, status.error.message) == (ErrorCode.INVALID_INPUT, message)
    assert status.stages[0].state == StageState.FAILED
    assert status.observed_generation == 2
    assert [short(a) for a in decision.actions] == ["cancel speech/1", f"event {SPEC_CHANGED}"]
    cancel, event = decision.actions
    assert isinstance(cancel, PublishCancel)
    assert cancel.cancel.job_id == "uid-1/generate_speech/1"
    assert cancel.cancel.reason == message
    assert event == PostEvent("Warning", "SpecChanged", f"INVALID_INPUT: {message}")
    failed_condition = status.condition(ConditionType.FAILED)
    assert failed_condition is not None
    assert (failed_condition.status, failed_condition.reason) == (ConditionStatus.TRUE, "SpecChanged")
    assert (failed_condition.message, failed_condition.observed_generation) == (message, 2)
    accepted = status.condition(ConditionType.ACCEPTED)
    assert accepted is not None
    assert (accepted.status, accepted.observed_generation) == (ConditionStatus.TRUE, 1), (
        "the Accepted condition still says which generation was accepted"
    )
    # Failed is final: the edited workflow is not looked at again but for its time to live.
    later = reconcile(
        Workflow(REF, edited, status, generation=2), Tick(), now=at(6), limits=LIMITS, policy=POLICY
    )
    assert later.status is None
    assert later.actions == ()


def test_a_spec_edited_before_acceptance_is_accepted_as_edited() -> None:
    edited = edited_spec(text="the second thoughts")
    waiting = reconcile(
        Workflow(REF, edited, TTSWorkflowStatus(), generation=2),
        Tick(),
        now=at(0),
        limits=LIMITS,
        policy=POLICY,
    )
    assert waiting.ignored == "the workflow has not been accepted yet"
    decision = reconcile(
        Workflow(REF, edited, TTSWorkflowStatus(), generation=2),
        Created(),
        now=at(1),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.QUEUED
    assert decision.status.observed_generation == 2
    job = next(a for a in decision.actions if isinstance(a, PublishJob)).job
    assert job.config is not None
    assert job.config.text == "the second thoughts"
    # That generation is the accepted one: it runs on, nothing is "changed".
    status = TTSWorkflowStatus.from_k8s(decision.status.to_k8s())
    after = reconcile(
        Workflow(REF, edited, status, generation=2), ev(started()), now=at(2), limits=LIMITS, policy=POLICY
    )
    assert after.status is not None
    assert after.status.phase == Phase.RUNNING


def test_a_spec_edited_into_an_invalid_one_before_acceptance_is_refused_naming_the_field() -> None:
    decision = reconcile(
        Workflow(REF, edited_spec(emotionAlpha=2), TTSWorkflowStatus(), generation=2),
        Created(),
        now=at(0),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.FAILED
    assert decision.status.error is not None
    assert decision.status.error.message.startswith("spec.workflowConfig.indexttsConfig.emotionAlpha")
    assert [short(a) for a in decision.actions] == ["event Failed"]


@pytest.mark.parametrize(
    "given", [Tick(), Resumed(), Created(), ev(completed()), Deleted()], ids=lambda g: type(g).__name__
)
def test_a_finished_workflow_whose_spec_is_edited_stays_as_it_finished(given: Input) -> None:
    status, _ = run_story(STORIES[0])
    assert (status.phase, status.observed_generation) == (Phase.SUCCEEDED, 1)
    decision = reconcile(
        Workflow(REF, edited_spec(emotionAlpha=2), status, generation=2),
        given,
        now=at(60),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.ignored is not None
    assert decision.status is None
    assert decision.actions == ()


def test_an_edited_running_workflow_that_is_deleted_is_cancelled_as_any() -> None:
    decision = reconcile(
        Workflow(REF, edited_spec(text="x"), running_at_generation_one(), generation=2),
        Deleted(),
        now=at(5),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.CANCELLED
    assert [short(a) for a in decision.actions] == ["cancel speech/1", "event Cancelled"]


def test_without_generations_a_spec_that_no_longer_reads_fails_naming_the_field() -> None:
    """A store that keeps no generation cannot tell an edit: the spec is re-read on each input."""
    accepted = reconcile(
        Workflow(REF, spec(), TTSWorkflowStatus()), Created(), now=at(0), limits=LIMITS, policy=POLICY
    )
    assert accepted.status is not None
    assert accepted.status.observed_generation is None
    decision = reconcile(
        Workflow(REF, edited_spec(emotionAlpha=2), accepted.status),
        Tick(),
        now=at(1),
        limits=LIMITS,
        policy=POLICY,
    )
    assert decision.status is not None
    assert decision.status.phase == Phase.FAILED
    assert decision.status.error is not None
    assert decision.status.error.code == ErrorCode.INVALID_INPUT
    assert decision.status.error.message.startswith("spec.workflowConfig.indexttsConfig.emotionAlpha")
    assert [short(a) for a in decision.actions] == ["cancel speech/1", "event Failed"]


def test_the_operators_settings_default_to_the_limits() -> None:
    """``Limits`` is the one definition of the defaults; the settings read theirs from it."""
    from tts_operator.settings import Settings

    assert Settings().limits() == Limits()
