"""The reconcile core: plain functions from (workflow, input, now) to a decision.

A :class:`Decision` is the new status (or ``None`` when nothing changes) and the actions to take:
publish a job, publish a cancel, post a Kubernetes Event, delete the workflow. The adapters
(:mod:`tts_operator.runner`, the kopf handlers, the events consumer) perform them; nothing here does
I/O, reads the clock or reads the environment: the caller passes the time, the limits and the
validation policy.

Idempotence rests on one rule: an attempt number only ever comes from the recorded status. The
first dispatch of a stage is attempt 1, a retry is the recorded attempt + 1, and the job's
``Nats-Msg-Id`` is ``uid/stage/attempt``. So the same status always yields the same job id, and a
replay (a restart, a re-run kopf handler, a replayed event) publishes a message that JetStream drops
as a duplicate. See docs/operator.md.

Retries are decided here and nowhere else: the inference pods never retry a job by themselves, they
report a failure once (``retryable`` unless the user is at fault), and a job whose worker died is
reported by the worker it is redelivered to as a lost worker (``worker_lost``), not run. Each
dispatch ends at most once: an event of a superseded attempt is ignored, so a stale heartbeat and
the redelivery of the same attempt count once. Two budgets bound a stage: ``max_attempts`` for the
job's own failures, ``max_worker_losses`` for the workers lost while running it (killed, their node
gone, silent), so that churn in the fleet does not spend the user's attempts while a job that stops
every worker it lands on still fails, saying so.

A TTSWorkflow's spec is immutable once accepted. Where the API server checks CEL rules (Kubernetes
1.25 and later) the CRD's rule refuses the edit; an older server admits it and bumps
``metadata.generation``, and then the core fails the workflow (reason ``SpecChanged``, its job
cancelled) as soon as it sees a generation newer than the one it accepted
(``status.observedGeneration``). See docs/api.md, "Changing a workflow's spec".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from tts_api.constants import ConditionStatus, ConditionType, Phase, StageState, TaskName
from tts_api.errors import ErrorCode, ErrorInfo, TTSError
from tts_api.messages import (
    CancelMessage,
    CompletedEvent,
    FailedEvent,
    HeartbeatEvent,
    JobMessage,
    ProgressEvent,
    StartedEvent,
    WorkerEvent,
    WorkflowRef,
    make_job_id,
)
from tts_api.policy import ValidationPolicy, stored_record_policy
from tts_api.resource import Condition, HeartbeatStatus, StageStatus, TTSWorkflowSpec, TTSWorkflowStatus
from tts_api.results import OUTPUT_MODELS, SpeechResult
from tts_api.speech_models import engine_of
from tts_api.validation import parse_spec
from tts_operator.conditions import set_condition

# --- what the core needs to know -----------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """The operator's settings that decisions depend on.

    The defaults here are the only definition: :class:`tts_operator.settings.Settings` takes its
    defaults from them, and a chart test checks the chart's values against them.
    """

    default_timeout_seconds: int = 600
    default_ttl_seconds: int = 3600
    heartbeat_stale_seconds: float = 30.0
    max_attempts: int = 3
    # Workers lost while running one stage (redelivered, or silent) before it fails: churn kills
    # workers whatever they run, so this is apart from, and larger than, the attempts.
    max_worker_losses: int = 8
    backoff_base_seconds: float = 2.0
    backoff_max_seconds: float = 60.0
    # A queued attempt is re-published (same Nats-Msg-Id) only this long after it was queued:
    # within JetStream's de-duplication window (1 h), with a margin.
    republish_window_seconds: float = 3240.0
    # A queued job whose model no live worker serves waits this long, then fails; the workflow's
    # timeoutSeconds does not count that wait.
    max_queue_seconds: float = 300.0
    # The inference pods are scaled on the queue (KEDA): a model with no worker is one scaled to
    # zero or starting (WaitingForWorker), not one nobody runs (NoWorkerForModel).
    autoscaling: bool = False

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait before the attempt after ``failed_attempt`` (1-based): doubling, capped."""
        return float(min(self.backoff_max_seconds, self.backoff_base_seconds * 2 ** (failed_attempt - 1)))


@dataclass(frozen=True)
class Workflow:
    """One TTSWorkflow as the core sees it: identity, the spec as stored, the status.

    ``generation`` is ``metadata.generation`` of the body the spec was read from (None where the
    store keeps none); acceptance records it as ``status.observedGeneration``.
    """

    ref: WorkflowRef
    spec: Mapping[str, Any]
    status: TTSWorkflowStatus
    generation: int | None = None


@dataclass(frozen=True)
class Routing:
    """Where a workflow's next job goes: ``model``, the one it is for, and ``served``, the models
    live workers serve now (None: the operator does not know, e.g. a test with no registry, or NATS
    away; then no job is judged to wait for a worker)."""

    model: str
    served: frozenset[str] | None = None

    def serves(self, model: str) -> bool | None:
        """Whether a live worker serves ``model``; None when that is not known."""
        return None if self.served is None else model in self.served


def route(spec: TTSWorkflowSpec, policy: ValidationPolicy, served: frozenset[str] | None) -> Routing:
    """A job of ``spec`` is for the model it names, else the deployment's default."""
    config = spec.workflow_config.indextts_config
    named = config.model if config is not None else None
    return Routing(named or policy.default_model_name, served)


# --- inputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """The workflow was seen for the first time."""


@dataclass(frozen=True)
class Resumed:
    """The operator (re)started and found the workflow."""


@dataclass(frozen=True)
class WorkerEventInput:
    """An event from an inference pod."""

    event: WorkerEvent


@dataclass(frozen=True)
class Tick:
    """The periodic check: overall timeout, stale heartbeats, time to live."""


@dataclass(frozen=True)
class Deleted:
    """The workflow is being deleted."""


Input = Created | Resumed | WorkerEventInput | Tick | Deleted

# --- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishJob:
    """Publish ``job`` on the jobs stream with ``Nats-Msg-Id`` = ``job.job_id``, after ``delay_seconds``."""

    job: JobMessage
    delay_seconds: float = 0.0


@dataclass(frozen=True)
class PublishCancel:
    """Cancel a job; ``dequeue``: it was still queued (no worker had started it), so its message is
    also taken off the jobs queue, where a worker coming later would otherwise run it for nothing."""

    cancel: CancelMessage
    dequeue: bool = False


@dataclass(frozen=True)
class PostEvent:
    """A Kubernetes Event on the workflow; ``reason`` is CamelCase."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


EventLevel = Literal["all", "warnings", "none"]
"""Which of the decisions' Events are posted (each one is an API write): every one, the warnings
(failures, retries), or none."""


def posted(level: EventLevel, kind: Literal["Normal", "Warning"]) -> bool:
    return level == "all" or (level == "warnings" and kind == "Warning")


@dataclass(frozen=True)
class DeleteWorkflow:
    reason: str


Action = PublishJob | PublishCancel | PostEvent | DeleteWorkflow


TimeoutKind = Literal["heartbeat", "workflow"]

# The reason (conditions and Event) of a workflow failed because its spec was edited after acceptance.
SPEC_CHANGED = "SpecChanged"
# The reason (the Running condition, then the failure's) of a queued job whose model no live worker
# serves: where the pods are scaled on the queue, WAITING_FOR_WORKER (scaled to zero, or starting).
NO_WORKER_FOR_MODEL = "NoWorkerForModel"
WAITING_FOR_WORKER = "WaitingForWorker"


@dataclass(frozen=True)
class Decision:
    """The new status (``None``: unchanged) and the actions, performed after the status is written.

    ``batchable`` marks a change that only refreshes the heartbeat or progress: the runner may hold
    it for a moment and write several at once. ``ignored`` says why an input changed nothing.
    ``timed_out`` says which limit failed the workflow with ``TASK_TIMEOUT``, when one did: the
    heartbeat (attempts used up by silent workers) or the workflow's ``timeoutSeconds``.
    """

    status: TTSWorkflowStatus | None = None
    actions: tuple[Action, ...] = ()
    batchable: bool = False
    ignored: str | None = None
    timed_out: TimeoutKind | None = None


def ignore(why: str) -> Decision:
    return Decision(ignored=why)


# --- the entry point -------------------------------------------------------------------------------


def reconcile(
    workflow: Workflow,
    given: Input,
    *,
    now: datetime,
    limits: Limits,
    policy: ValidationPolicy,
    served: frozenset[str] | None = None,
) -> Decision:
    """What ``given`` does to ``workflow`` at ``now``, under ``limits``; specs are checked with
    ``policy``; ``served`` is the models live workers serve (None: not known)."""
    status = workflow.status
    if isinstance(given, Deleted):
        return _on_delete(workflow, now=now)
    if status.accepted_at is None and not status.phase.finished:
        if isinstance(given, Created | Resumed):
            return _accept(workflow, now=now, limits=limits, policy=policy, served=served)
        return ignore("the workflow has not been accepted yet")
    if status.phase.finished:
        if isinstance(given, Tick):
            return _on_tick_finished(workflow, now=now, limits=limits)
        return ignore(f"the workflow has finished ({status.phase.value})")
    changed = _spec_changed(workflow, now=now)
    if changed is not None:
        return changed
    try:
        # Re-read as an accepted record: no disk checks, so a reference deleted since is no error.
        spec = parse_spec(dict(workflow.spec), policy=stored_record_policy(policy))
    except TTSError as exc:
        # A store that keeps no generation cannot tell an edit: a spec that no longer reads fails,
        # naming the field.
        return _fail(workflow, exc.info(), now=now, cancel=True)
    routing = route(spec, policy, served)
    match given:
        case Created() | Resumed():
            return _resume(workflow, spec, now=now, limits=limits, routing=routing)
        case WorkerEventInput(event=event):
            return _on_event(workflow, spec, event, now=now, limits=limits, routing=routing)
        case Tick():
            return _on_tick(workflow, spec, now=now, limits=limits, routing=routing)
    raise TypeError(f"unknown input {given!r}")  # pragma: no cover


# --- creation and resumption -----------------------------------------------------------------------


def _accept(
    workflow: Workflow,
    *,
    now: datetime,
    limits: Limits,
    policy: ValidationPolicy,
    served: frozenset[str] | None,
) -> Decision:
    try:
        spec = parse_spec(dict(workflow.spec), policy=policy)
    except TTSError as exc:
        return _reject(workflow, exc, now=now)
    chain = spec.workflow_config.workflow_chain
    status = workflow.status.model_copy(deep=True)
    status.stages = [StageStatus(name=task) for task in chain]
    status.accepted_at = now
    status.observed_generation = workflow.generation
    status.error = None
    for kind, value, reason, message in (
        (ConditionType.ACCEPTED, ConditionStatus.TRUE, "Accepted", "the spec is valid"),
        (ConditionType.SUCCEEDED, ConditionStatus.FALSE, "InProgress", "the workflow has not finished"),
        (ConditionType.FAILED, ConditionStatus.FALSE, "InProgress", "the workflow has not finished"),
    ):
        status.conditions = set_condition(
            status.conditions, kind, value, reason, message, now, workflow.generation
        )
    chain_text = " → ".join(task.value for task in chain)
    accepted = PostEvent("Normal", "Accepted", f"accepted: {chain_text}")
    routing = route(spec, policy, served)
    return _dispatch(workflow, spec, status, 0, 1, now=now, limits=limits, routing=routing, first=(accepted,))


def _reject(workflow: Workflow, exc: TTSError, *, now: datetime) -> Decision:
    status = workflow.status.model_copy(deep=True)
    status.accepted_at = now
    status.observed_generation = workflow.generation
    status.conditions = set_condition(
        status.conditions,
        ConditionType.ACCEPTED,
        ConditionStatus.FALSE,
        "InvalidInput",
        exc.message,
        now,
        workflow.generation,
    )
    status = _finish(status, Phase.FAILED, exc.info(), now=now, generation=workflow.generation)
    return Decision(status, (PostEvent("Warning", "Failed", f"{exc.code.value}: {exc.message}"),))


def _resume(
    workflow: Workflow, spec: TTSWorkflowSpec, *, now: datetime, limits: Limits, routing: Routing
) -> Decision:
    """After a restart (or a re-run create handler): re-announce a queued stage, if it is due."""
    stage = _in_hand(workflow.status)
    if stage.state != StageState.QUEUED:
        return ignore("the current stage is with a worker")
    return _reannounce(workflow, spec, stage, now=now, limits=limits, routing=routing)


def _reannounce(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    stage: StageStatus,
    *,
    now: datetime,
    limits: Limits,
    routing: Routing,
) -> Decision:
    """Re-publish a queued stage's recorded attempt, in case its first publish was lost; follow
    whether a worker serves its model.

    The attempt is the recorded one, hence the same ``Nats-Msg-Id``: if the first publish landed,
    JetStream drops this one as a duplicate. That holds within its de-duplication window only, so a
    job queued longer ago is not re-published (it waits in the work queue until a worker takes it).
    A retry is not published before its backoff ends.

    The attempt keeps the model it was queued for. While no live worker serves it, the stage waits
    for ``limits.max_queue_seconds`` with the reason ``NoWorkerForModel`` (``WaitingForWorker``
    where the pods are autoscaled), then fails with ``MODEL_NOT_READY`` (``GPU_UNAVAILABLE``: no pod
    of a scaled Deployment came up), its job taken off the queue. The workflow's own timeout does not
    count that wait (see :func:`_deadline`).
    """
    queued = stage.queued_at or workflow.status.accepted_at or now
    if now < queued:
        return ignore(f"attempt {stage.attempt} is due at {queued.isoformat()} (backoff)")
    model = stage.model or routing.model
    serves = routing.serves(model)
    status: TTSWorkflowStatus | None = None
    if serves is False:
        since = stage.no_worker_since or now
        if now - since >= timedelta(seconds=limits.max_queue_seconds):
            code = ErrorCode.GPU_UNAVAILABLE if limits.autoscaling else ErrorCode.MODEL_NOT_READY
            error = ErrorInfo(code=code, message=_no_worker_error(model, routing, limits))
            return _fail(workflow, error, now=now, cancel=True, reason=_waiting_reason(limits))
        if stage.no_worker_since is None:
            status = _waiting(workflow, model, since, now=now, limits=limits)
    elif serves and stage.no_worker_since is not None:
        status = _waiting(workflow, model, None, now=now, limits=limits)
    if status is None and stage.model != model:  # a record queued before jobs went by model
        status = _waiting(workflow, model, stage.no_worker_since, now=now, limits=limits)
    if now >= queued + timedelta(seconds=limits.republish_window_seconds):
        if status is not None:
            return Decision(status)
        return ignore("queued longer than the de-duplication window: not re-published")
    job = PublishJob(_job(workflow, spec, stage.name, stage.attempt, limits=limits, model=model))
    return Decision(status, (job,))


def _waiting(
    workflow: Workflow, model: str, since: datetime | None, *, now: datetime, limits: Limits
) -> TTSWorkflowStatus:
    """The status of a queued stage bound for ``model``, waiting since ``since`` for a worker
    serving it (None: one serves it, it waits for a free slot only)."""
    status = workflow.status.model_copy(deep=True)
    stage = _in_hand(status)
    stage.model = model
    _end_wait(status, stage, now)
    stage.no_worker_since = since
    status.updated_at = now
    status.conditions = _queued_conditions(status, stage, now, limits, workflow.generation)
    return status


def _end_wait(status: TTSWorkflowStatus, stage: StageStatus, now: datetime) -> None:
    """Close the stage's wait for a worker, if one is open: its length is added to the time the
    workflow's timeout does not count."""
    if stage.no_worker_since is not None:
        waited = max(0.0, (now - stage.no_worker_since).total_seconds())
        status.worker_wait_seconds = (status.worker_wait_seconds or 0.0) + waited
        stage.no_worker_since = None


def _waiting_reason(limits: Limits) -> str:
    return WAITING_FOR_WORKER if limits.autoscaling else NO_WORKER_FOR_MODEL


def _queued_conditions(
    status: TTSWorkflowStatus, stage: StageStatus, now: datetime, limits: Limits, generation: int | None
) -> list[Condition]:
    """The conditions with Running set to False, saying why the queued ``stage`` waits."""
    reason, message = _queued_condition(stage, limits)
    return set_condition(
        status.conditions, ConditionType.RUNNING, ConditionStatus.FALSE, reason, message, now, generation
    )


def _queued_condition(stage: StageStatus, limits: Limits) -> tuple[str, str]:
    """The Running condition's reason and message for a queued stage."""
    what = f"{stage.name.value} attempt {stage.attempt}"
    if stage.no_worker_since is None:
        return "Queued", f"{what} is waiting for an inference pod"
    deadline = (stage.no_worker_since + timedelta(seconds=limits.max_queue_seconds)).isoformat()
    if limits.autoscaling:
        return WAITING_FOR_WORKER, (
            f"{what} is waiting for an inference worker of model {stage.model}: none is up (scaled to "
            f"zero, or its pods are starting or Pending); it fails with GPU_UNAVAILABLE at {deadline} "
            "unless one starts"
        )
    return NO_WORKER_FOR_MODEL, (
        f"{what} is queued for model {stage.model}, which no live inference worker serves; it fails "
        f"with MODEL_NOT_READY at {deadline} unless one starts"
    )


def _no_worker_error(model: str, routing: Routing, limits: Limits) -> str:
    """What a workflow that waited in vain for a worker of its model says."""
    waited = f"{limits.max_queue_seconds:g} s (TTS_OPERATOR_MAX_QUEUE_SECONDS)"
    served = sorted(routing.served or ())
    others = f"; models served now: {', '.join(served)}" if served else ""
    if limits.autoscaling:
        return (
            f"no inference worker of model {model} started within {waited}: its pods may be Pending "
            "on the GPU quota or on a node with a free GPU (kubectl get pods; kubectl describe "
            f"scaledobject), or its image or model may not load{others}"
        )
    return (
        f"no inference worker served model {model} within {waited}: start inference pods for it "
        f"(TTS_WORKER_ENGINE={engine_of(model)}), or ask for a model that is served{others}"
    )


# --- an edited spec --------------------------------------------------------------------------------


def spec_changed_message(generation: int, accepted: int) -> str:
    """What the workflow's status, condition and Event say when its spec was edited after acceptance."""
    return (
        f"the spec changed after the workflow was accepted (generation {generation}, accepted at "
        f"{accepted}); a TTSWorkflow's spec cannot change: create a new TTSWorkflow"
    )


def _spec_changed(workflow: Workflow, *, now: datetime) -> Decision | None:
    """An accepted, unfinished workflow whose spec is newer than the one accepted fails, valid or not.

    The job in flight is cancelled (it runs the spec as accepted); the error is ``INVALID_INPUT``,
    the user's doing, which no retry mends. ``status.observedGeneration`` moves to the generation
    seen; the ``Accepted`` condition keeps the one accepted. ``None`` when the spec is unchanged, or
    when a generation to compare is missing (a store that keeps none).
    """
    accepted = workflow.status.observed_generation
    current = workflow.generation
    if accepted is None or current is None or current <= accepted:
        return None
    error = ErrorInfo(code=ErrorCode.INVALID_INPUT, message=spec_changed_message(current, accepted))
    seen = replace(workflow, status=workflow.status.model_copy(update={"observed_generation": current}))
    return _fail(seen, error, now=now, cancel=True, reason=SPEC_CHANGED)


# --- worker events -------------------------------------------------------------------------------


def _on_event(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    event: WorkerEvent,
    *,
    now: datetime,
    limits: Limits,
    routing: Routing,
) -> Decision:
    status = workflow.status
    if event.workflow.uid != workflow.ref.uid:
        return ignore("the event belongs to another workflow of the same name (deleted and re-created)")
    if event.task != status.current_stage:
        return ignore(f"{event.task.value} is not the current stage")
    stage = _in_hand(status)
    if event.attempt != stage.attempt:
        return ignore(f"attempt {event.attempt} is not the current attempt {stage.attempt} (superseded)")
    match event:
        case StartedEvent() | HeartbeatEvent() | ProgressEvent():
            return _on_sign_of_life(workflow, event, now=now)
        case CompletedEvent():
            return _on_completed(workflow, spec, event, now=now, limits=limits, routing=routing)
        case FailedEvent():
            if event.worker_lost or event.retryable:
                return _retry_or_fail(
                    workflow,
                    spec,
                    event.error,
                    now=now,
                    limits=limits,
                    routing=routing,
                    cancel=False,
                    lost=event.worker_lost,
                )
            return _fail(workflow, event.error, now=now)
    raise TypeError(f"unknown event {event!r}")  # pragma: no cover


def _on_sign_of_life(
    workflow: Workflow, event: StartedEvent | HeartbeatEvent | ProgressEvent, *, now: datetime
) -> Decision:
    status = workflow.status.model_copy(deep=True)
    stage = _in_hand(status)
    # The operator's own clock marks the heartbeat, so a worker's clock skew cannot fake staleness.
    heartbeat = status.heartbeat or HeartbeatStatus()
    heartbeat.pod = event.pod
    heartbeat.worker = event.worker_id
    if isinstance(event, StartedEvent):
        heartbeat.gpu = event.gpu
    heartbeat.last_heartbeat = now
    status.heartbeat = heartbeat
    progress = event.progress if isinstance(event, HeartbeatEvent | ProgressEvent) else None
    if progress is not None:
        index = _index(status, stage.name)
        status.progress = max(status.progress, _progress(index, len(status.stages), progress.percent))
    status.updated_at = now
    if stage.state == StageState.RUNNING:
        return Decision(status, batchable=True)
    # The first sign of life of this attempt (a heartbeat may overtake a lost "started").
    stage.state = StageState.RUNNING
    stage.started_at = event.at
    _end_wait(status, stage, now)  # a worker of its model took it
    status.phase = Phase.RUNNING
    status.started_at = status.started_at or now
    message = f"{stage.name.value} attempt {stage.attempt} running on pod {event.pod}"
    if heartbeat.gpu:
        message += f" ({heartbeat.gpu})"
    status.conditions = set_condition(
        status.conditions,
        ConditionType.RUNNING,
        ConditionStatus.TRUE,
        "StageRunning",
        message,
        now,
        workflow.generation,
    )
    return Decision(status, (PostEvent("Normal", "Started", message),))


def _on_completed(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    event: CompletedEvent,
    *,
    now: datetime,
    limits: Limits,
    routing: Routing,
) -> Decision:
    try:
        output = OUTPUT_MODELS[event.task].model_validate(event.output)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "output"
        error = ErrorInfo(
            code=ErrorCode.PROCESSING_ERROR,
            message=f"{event.task.value} returned a result this operator cannot read ({where}: "
            f"{first['msg']}); run the same release of the operator and the inference pods",
        )
        return _fail(workflow, error, now=now)
    status = workflow.status.model_copy(deep=True)
    stage = _in_hand(status)
    stage.state = StageState.SUCCEEDED
    stage.finished_at = event.at
    stage.error = None
    stage.output = output.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(output, SpeechResult):
        status.result = output
    index = _index(status, stage.name)
    done = PostEvent("Normal", "StageSucceeded", f"{stage.name.value} succeeded on pod {event.pod}")
    if index + 1 < len(status.stages):
        return _dispatch(
            workflow, spec, status, index + 1, 1, now=now, limits=limits, routing=routing, first=(done,)
        )
    status.current_stage = None
    status.progress = 100
    status = _finish(status, Phase.SUCCEEDED, None, now=now, generation=workflow.generation)
    took = (now - status.accepted_at).total_seconds() if status.accepted_at else 0.0
    message = f"all {len(status.stages)} stage(s) succeeded in {took:.1f} s"
    if isinstance(status.result, SpeechResult):
        message += f"; audio at {status.result.output_path}"
    return Decision(status, (PostEvent("Normal", "Succeeded", message),))


# --- the timer -------------------------------------------------------------------------------------


def expires_at(workflow: Workflow, *, now: datetime, limits: Limits) -> datetime:
    """When a finished workflow is due for deletion: ``ttlSecondsAfterFinished`` after it finished."""
    status = workflow.status
    ttl = _raw_int(workflow.spec, "ttlSecondsAfterFinished", limits.default_ttl_seconds)
    finished = status.finished_at or status.updated_at or now
    return finished + timedelta(seconds=ttl)


def tick_due(workflow: Workflow, *, now: datetime, limits: Limits) -> datetime | None:
    """When a Tick can next change ``workflow``: None while it is unfinished (every tick checks its
    timeout and its heartbeat), else when its time to live runs out."""
    if not workflow.status.phase.finished:
        return None
    return expires_at(workflow, now=now, limits=limits)


def _on_tick_finished(workflow: Workflow, *, now: datetime, limits: Limits) -> Decision:
    """A finished workflow is deleted ``ttlSecondsAfterFinished`` after it finished."""
    if now >= expires_at(workflow, now=now, limits=limits):
        ttl = _raw_int(workflow.spec, "ttlSecondsAfterFinished", limits.default_ttl_seconds)
        return Decision(None, (DeleteWorkflow(f"finished {ttl} s ago (ttlSecondsAfterFinished)"),))
    return ignore("finished; its time to live has not run out")


def _on_tick(
    workflow: Workflow, spec: TTSWorkflowSpec, *, now: datetime, limits: Limits, routing: Routing
) -> Decision:
    """The overall timeout first, then a running stage's heartbeat."""
    status = workflow.status
    deadline = _deadline(spec, status, limits, now)
    stage = _in_hand(status)
    if deadline is not None and now >= deadline:
        message = (
            f"the workflow did not finish within {_timeout_seconds(spec, limits)} s of being "
            f"accepted (stage {status.current_stage}); raise spec.timeoutSeconds, or add inference "
            "pods if jobs wait for a free GPU"
        )
        if status.accepted_at is not None:
            waited = (deadline - status.accepted_at).total_seconds() - _timeout_seconds(spec, limits)
            if waited >= 1:
                message += f" (not counting {waited:.0f} s with no worker of its model)"
        if stage.worker_losses:
            lost = "worker was" if stage.worker_losses == 1 else "workers were"
            message += (
                f"; {stage.worker_losses} {lost} lost while running it: check the inference pods' "
                "logs and restarts"
            )
        error = ErrorInfo(code=ErrorCode.TASK_TIMEOUT, message=message)
        return _fail(workflow, error, now=now, cancel=True, timed_out="workflow")
    if stage.state == StageState.QUEUED:
        # A queued job may wait for a free GPU as long as the workflow's timeout allows.
        return _reannounce(workflow, spec, stage, now=now, limits=limits, routing=routing)
    last = (status.heartbeat.last_heartbeat if status.heartbeat else None) or stage.started_at
    if last is None or now - last <= timedelta(seconds=limits.heartbeat_stale_seconds):
        return ignore("the heartbeat is fresh")
    pod = status.heartbeat.pod if status.heartbeat and status.heartbeat.pod else "unknown"
    error = ErrorInfo(
        code=ErrorCode.TASK_TIMEOUT,
        message=f"{stage.name.value} attempt {stage.attempt}: no heartbeat from pod {pod} for "
        f"{(now - last).total_seconds():.0f} s (limit {limits.heartbeat_stale_seconds:g} s); "
        "check the inference pods' logs and GPU health",
    )
    return _retry_or_fail(
        workflow,
        spec,
        error,
        now=now,
        limits=limits,
        routing=routing,
        cancel=True,
        lost=True,
        timed_out="heartbeat",
    )


# --- deletion --------------------------------------------------------------------------------------


def _on_delete(workflow: Workflow, *, now: datetime) -> Decision:
    status = workflow.status
    if status.accepted_at is None or status.phase.finished:
        return ignore("no job in flight")
    stage = _current(status)
    status = status.model_copy(deep=True)
    cancel: list[Action] = []
    if stage is not None:
        cancel.append(PublishCancel(_cancel(workflow, stage, "the workflow was deleted")))
    status = _finish(status, Phase.CANCELLED, None, now=now, generation=workflow.generation)
    message = "deleted while in flight"
    if stage is not None:
        message += f"; cancelled {stage.name.value} attempt {stage.attempt}"
    return Decision(status, (*cancel, PostEvent("Normal", "Cancelled", message)))


# --- transitions shared by the above ---------------------------------------------------------------


def _dispatch(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    status: TTSWorkflowStatus,
    index: int,
    attempt: int,
    *,
    now: datetime,
    limits: Limits,
    routing: Routing,
    delay: float = 0.0,
    first: tuple[Action, ...] = (),
) -> Decision:
    """Queue attempt ``attempt`` of stage ``index`` for ``routing.model``: record it in ``status``
    and publish its job on that model's subject."""
    stage = status.stages[index]
    stage.state = StageState.QUEUED
    stage.attempt = attempt
    stage.queued_at = now + timedelta(seconds=delay)
    stage.started_at = None
    stage.finished_at = None
    stage.model = routing.model
    stage.no_worker_since = now if routing.serves(routing.model) is False else None
    status.current_stage = stage.name
    status.phase = Phase.QUEUED
    status.heartbeat = None
    status.progress = _progress(index, len(status.stages), 0)
    status.updated_at = now
    status.conditions = _queued_conditions(
        status, stage, now=now, limits=limits, generation=workflow.generation
    )
    job = _job(workflow, spec, stage.name, attempt, limits=limits, model=routing.model, status=status)
    dispatched = PostEvent("Normal", "Dispatched", f"dispatched {job.job_id} for model {routing.model}")
    return Decision(status, (*first, PublishJob(job, delay_seconds=delay), dispatched))


def _retry_or_fail(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    error: ErrorInfo,
    *,
    now: datetime,
    limits: Limits,
    routing: Routing,
    cancel: bool,
    lost: bool = False,
    timed_out: TimeoutKind | None = None,
) -> Decision:
    """Another attempt at the current stage after a backoff, or the workflow fails when none is left.

    The one place where retries are decided. The current attempt has ended (``error`` says how) in
    one of two ways, each with its own budget:

    - the job failed (``lost`` False: the engine ran out of memory, the model was not ready, ...):
      one of ``limits.max_attempts``, the attempts the user's job gets;
    - the worker running it was lost (``lost``: it died and the job was redelivered, or it went
      silent): one of ``limits.max_worker_losses``. Workers are killed whatever they run (a node
      lost, an eviction without grace, a chaos test), so these do not spend the user's attempts;
      a job that stops every worker it lands on still runs out of them, and the message says so.

    The next dispatch is ``stage.attempt + 1`` either way (its ``Nats-Msg-Id`` is new), queued
    ``limits.backoff(attempt)`` seconds later. ``timed_out`` names the limit when the failure that
    ends it all is a ``TASK_TIMEOUT``.
    """
    stage = _in_hand(workflow.status)
    losses = stage.worker_losses + (1 if lost else 0)
    failures = stage.attempt - losses  # dispatches that ended in the job's own failure, this one included
    status = workflow.status.model_copy(deep=True)
    current = _in_hand(status)
    current.error = error
    current.worker_losses = losses
    counted = replace(workflow, status=status)
    if lost and losses >= limits.max_worker_losses:
        gave_up = ErrorInfo(code=error.code, message=f"{error.message} (gave up: {_losses_note(losses)})")
        return _fail(counted, gave_up, now=now, cancel=cancel, timed_out=timed_out)
    if not lost and failures >= limits.max_attempts:
        plural = "s" if failures != 1 else ""
        note = f"gave up after {failures} attempt{plural}"
        if losses:
            note += f"; {losses} more ended with their worker lost"
        exhausted = ErrorInfo(code=error.code, message=f"{error.message} ({note})")
        return _fail(counted, exhausted, now=now, cancel=cancel, timed_out=timed_out)
    actions: list[Action] = []
    if cancel:
        actions.append(PublishCancel(_cancel(workflow, stage, error.message)))
    delay = limits.backoff(stage.attempt)
    if lost:
        how = f"lost its worker ({error.code.value}: {error.message})"
        spent = f"worker lost {losses} of {limits.max_worker_losses} times; no attempt spent"
    else:
        how = f"failed ({error.code.value}: {error.message})"
        spent = f"attempt {failures} of {limits.max_attempts} failed"
    actions.append(
        PostEvent(
            "Warning",
            "Retrying",
            f"{stage.name.value} attempt {stage.attempt} {how}; attempt {stage.attempt + 1} in "
            f"{delay:g} s ({spent})",
        )
    )
    index = _index(status, stage.name)
    return _dispatch(
        workflow,
        spec,
        status,
        index,
        stage.attempt + 1,
        now=now,
        limits=limits,
        routing=routing,
        delay=delay,
        first=tuple(actions),
    )


def _losses_note(losses: int) -> str:
    """What a stage's lost workers say in its error: the job may be what stops them."""
    workers = "worker was" if losses == 1 else "workers were"
    return (
        f"{losses} {workers} lost while running it; a job that stops every worker it runs on (a crash "
        "or an out-of-memory kill on this input) ends this way: check the inference pods' logs and "
        "restarts, and change the input if it is the cause"
    )


def _fail(
    workflow: Workflow,
    error: ErrorInfo,
    *,
    now: datetime,
    cancel: bool = False,
    timed_out: TimeoutKind | None = None,
    reason: str | None = None,
) -> Decision:
    """The current stage and the workflow fail with ``error``; later stages will not run.

    ``reason`` is the conditions' and the Event's reason, when not the one the error code gives.
    """
    status = workflow.status.model_copy(deep=True)
    stage = _current(status)
    actions: list[Action] = []
    if stage is not None:
        if cancel:
            queued = stage.state == StageState.QUEUED
            actions.append(PublishCancel(_cancel(workflow, stage, error.message), dequeue=queued))
        stage.state = StageState.FAILED
        stage.finished_at = now
        stage.error = error
    status = _finish(status, Phase.FAILED, error, now=now, generation=workflow.generation, reason=reason)
    event = reason or ("TimedOut" if error.code == ErrorCode.TASK_TIMEOUT else "Failed")
    actions.append(PostEvent("Warning", event, f"{error.code.value}: {error.message}"))
    return Decision(status, tuple(actions), timed_out=timed_out)


def _finish(
    status: TTSWorkflowStatus,
    phase: Phase,
    error: ErrorInfo | None,
    *,
    now: datetime,
    generation: int | None,
    reason: str | None = None,
) -> TTSWorkflowStatus:
    status.phase = phase
    status.error = error
    status.finished_at = now
    status.updated_at = now
    for stage in status.stages:
        if stage.state in (StageState.PENDING, StageState.QUEUED, StageState.RUNNING):
            stage.state = StageState.CANCELLED
    if reason is None:
        reason = {
            Phase.SUCCEEDED: "Succeeded",
            Phase.FAILED: _camel(error.code) if error else "Failed",
            Phase.CANCELLED: "Cancelled",
        }[phase]
    message = error.message if error else f"the workflow {phase.value.lower()}"
    values = {
        ConditionType.RUNNING: ConditionStatus.FALSE,
        ConditionType.SUCCEEDED: ConditionStatus.TRUE if phase == Phase.SUCCEEDED else ConditionStatus.FALSE,
        ConditionType.FAILED: ConditionStatus.TRUE if phase == Phase.FAILED else ConditionStatus.FALSE,
    }
    for kind, value in values.items():
        status.conditions = set_condition(status.conditions, kind, value, reason, message, now, generation)
    return status


# --- small helpers ---------------------------------------------------------------------------------


def _current(status: TTSWorkflowStatus) -> StageStatus | None:
    return status.stage(status.current_stage) if status.current_stage is not None else None


def _in_hand(status: TTSWorkflowStatus) -> StageStatus:
    """The current stage of an accepted, unfinished workflow (which always has one)."""
    stage = _current(status)
    if stage is None:
        raise RuntimeError(f"status names no current stage in {status.stages!r}")
    return stage


def _index(status: TTSWorkflowStatus, name: TaskName) -> int:
    return next(i for i, stage in enumerate(status.stages) if stage.name == name)


def _progress(index: int, total: int, stage_percent: int) -> int:
    """Percent of the whole chain: ``index`` stages done of ``total``, plus the current one's part."""
    return min(100, (index * 100 + stage_percent) // max(total, 1))


def _raw_int(spec: Mapping[str, Any], key: str, default: int) -> int:
    value = spec.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _camel(code: ErrorCode) -> str:
    return "".join(word.capitalize() for word in code.value.split("_"))


def _timeout_seconds(spec: TTSWorkflowSpec, limits: Limits) -> int:
    """The workflow's time limit: its spec's ``timeoutSeconds``, else the operator's default."""
    return spec.timeout_seconds or limits.default_timeout_seconds


def _deadline(
    spec: TTSWorkflowSpec, status: TTSWorkflowStatus, limits: Limits, now: datetime
) -> datetime | None:
    """When the workflow times out: ``timeoutSeconds`` after acceptance, plus the time its jobs have
    waited with no live worker of their model (closed waits, and the one open now)."""
    if status.accepted_at is None:
        return None
    waited = status.worker_wait_seconds or 0.0
    stage = _current(status)
    if stage is not None and stage.no_worker_since is not None:
        waited += max(0.0, (now - stage.no_worker_since).total_seconds())
    return status.accepted_at + timedelta(seconds=_timeout_seconds(spec, limits) + waited)


def _job_deadline(spec: TTSWorkflowSpec, status: TTSWorkflowStatus, limits: Limits) -> datetime | None:
    """The deadline a job carries, after which a worker no longer starts it: fixed by the status
    (a re-published job is the same message), so it allows for the longest wait for a worker."""
    if status.accepted_at is None:
        return None
    allowed = _timeout_seconds(spec, limits) + limits.max_queue_seconds + (status.worker_wait_seconds or 0.0)
    return status.accepted_at + timedelta(seconds=allowed)


def _job(
    workflow: Workflow,
    spec: TTSWorkflowSpec,
    task: TaskName,
    attempt: int,
    *,
    limits: Limits,
    model: str,
    status: TTSWorkflowStatus | None = None,
) -> JobMessage:
    status = status or workflow.status
    return JobMessage(
        job_id=make_job_id(workflow.ref.uid, task, attempt),
        workflow=workflow.ref,
        task=task,
        attempt=attempt,
        config=spec.workflow_config.indextts_config,
        model=model,
        stream=spec.speech_stream if task is TaskName.GENERATE_SPEECH else None,
        deadline=_job_deadline(spec, status, limits),
        # Fixed by the status, not the clock, so that a re-published job is byte-for-byte the same.
        dispatched_at=status.accepted_at or status.updated_at,
    )


def _cancel(workflow: Workflow, stage: StageStatus, reason: str) -> CancelMessage:
    return CancelMessage(
        job_id=make_job_id(workflow.ref.uid, stage.name, stage.attempt),
        workflow=workflow.ref,
        reason=reason,
    )


__all__ = [
    "NO_WORKER_FOR_MODEL",
    "SPEC_CHANGED",
    "WAITING_FOR_WORKER",
    "Action",
    "Created",
    "Decision",
    "DeleteWorkflow",
    "Deleted",
    "EventLevel",
    "Input",
    "Limits",
    "PostEvent",
    "PublishCancel",
    "PublishJob",
    "Resumed",
    "Routing",
    "Tick",
    "TimeoutKind",
    "WorkerEventInput",
    "Workflow",
    "posted",
    "reconcile",
    "route",
    "spec_changed_message",
    "tick_due",
]
