"""The TTSWorkflow custom resource: its spec (a workflow API request) and its status.

Kubernetes speaks camelCase: dump with ``model_dump(mode="json", by_alias=True, exclude_none=True)``
and validate with :func:`tts_api.validation.parse_spec` / :meth:`TTSWorkflowStatus.from_k8s`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from tts_api.constants import (
    API_GROUP_VERSION,
    KIND,
    ConditionStatus,
    ConditionType,
    Phase,
    StageState,
    TaskName,
)
from tts_api.errors import ErrorInfo
from tts_api.request import SPEC_OUTPUT_RULES, WorkflowConfig, WorkflowRequest
from tts_api.results import SpeechResult
from tts_api.speech_stream import SpeechStream

MAX_TIMEOUT_SECONDS = 24 * 3600


class TTSWorkflowSpec(WorkflowRequest):
    """``spec``: the workflow API's request, camelCase, plus the workflow's time limits and, for the
    OpenAI-compatible route, where its audio is streamed."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": SPEC_OUTPUT_RULES})

    timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
        strict=True,
        description="Fail the workflow with TASK_TIMEOUT when it has not finished this many seconds "
        "after it was accepted, not counting the time its jobs waited with no worker of their model "
        "(TTS_OPERATOR_MAX_QUEUE_SECONDS bounds that); unset means the operator's default.",
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        strict=True,
        description="Delete the workflow this many seconds after it finished; unset means the "
        "operator's default.",
    )

    speech_stream: SpeechStream | None = Field(
        default=None,
        description="Stream the speech to a reader on NATS (set by the OpenAI-compatible route) instead "
        "of writing a WAV; outputPath is then optional.",
    )

    @property
    def needs_output_path(self) -> bool:
        return self.speech_stream is None

    @classmethod
    def from_request(
        cls,
        request: WorkflowRequest,
        *,
        timeout_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
        speech_stream: SpeechStream | None = None,
    ) -> TTSWorkflowSpec:
        """The spec for a validated REST request (no second validation: the request was checked)."""
        return cls.model_construct(
            video_path=request.video_path,
            workflow_config=request.workflow_config,
            timeout_seconds=timeout_seconds,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            speech_stream=speech_stream,
        )

    def to_request(self) -> WorkflowRequest:
        return WorkflowRequest.model_construct(
            video_path=self.video_path, workflow_config=self.workflow_config
        )

    def to_k8s(self) -> dict[str, Any]:
        """The spec as it is written into the resource (camelCase, defaults filled in)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(BaseModel):
    """Base of status models: camelCase in the resource, unknown fields ignored (newer writers)."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )


class StageStatus(StatusModel):
    """One task of the chain."""

    name: TaskName
    state: StageState = StageState.PENDING
    attempt: int = Field(default=0, ge=0, description="Dispatches so far; 1 for the first.")
    worker_losses: int = Field(
        default=0,
        ge=0,
        description="Dispatches that ended because the worker running them was lost (killed, its node "
        "gone, silent); counted apart from the attempts that failed.",
    )
    queued_at: datetime | None = Field(
        default=None,
        description="When the current attempt was put on the jobs queue (for a retry: when its "
        "backoff ends).",
    )
    model: str | None = Field(
        default=None,
        description="The model the current attempt is queued for; only workers serving it take it. "
        "Unset while no model is named, configured or served.",
    )
    no_worker_since: datetime | None = Field(
        default=None,
        description="Since when no live worker serves the model of the queued attempt (condition "
        "reason NoWorkerForModel, or WaitingForWorker where the pods are autoscaled); the stage fails "
        "once TTS_OPERATOR_MAX_QUEUE_SECONDS have passed so.",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: dict[str, Any] | None = Field(
        default=None, description="The task's result, in the workflow API's shape for that task."
    )
    error: ErrorInfo | None = None


class HeartbeatStatus(StatusModel):
    """The last sign of life from the inference pod running the current stage."""

    pod: str | None = None
    worker: str | None = None
    gpu: str | None = None
    last_heartbeat: datetime | None = None


class Condition(StatusModel):
    """A Kubernetes condition (``kubectl wait --for=condition=Succeeded`` reads these)."""

    type: ConditionType
    status: ConditionStatus
    reason: str = Field(min_length=1, description="CamelCase reason for the last transition.")
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = Field(default=None, ge=0)


class TTSWorkflowStatus(StatusModel):
    """``status``: written by the operator only."""

    phase: Phase = Phase.PENDING
    stages: list[StageStatus] = Field(default_factory=list)
    current_stage: TaskName | None = None
    progress: int = Field(default=0, ge=0, le=100, description="Percent of the whole chain done.")
    heartbeat: HeartbeatStatus | None = None
    result: SpeechResult | None = Field(
        default=None, description="The speech result (the workflow API's response fields), when one was made."
    )
    error: ErrorInfo | None = None
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = Field(default=None, ge=0)
    accepted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    worker_wait_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Seconds the workflow's jobs waited with no live worker of their model (past "
        "waits; the one open is in stages[].noWorkerSince): timeoutSeconds does not count them.",
    )

    @classmethod
    def from_k8s(cls, status: dict[str, Any] | None) -> TTSWorkflowStatus:
        return cls.model_validate(status or {}, by_alias=True, by_name=False)

    def to_k8s(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def stage(self, name: TaskName) -> StageStatus | None:
        return next((s for s in self.stages if s.name == name), None)


class ObjectMeta(BaseModel):
    """The part of ``metadata`` the project reads; the rest is kept as it is."""

    model_config = ConfigDict(extra="allow")

    name: str
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    creationTimestamp: datetime | None = None  # noqa: N815 (Kubernetes' spelling)
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class TTSWorkflow(BaseModel):
    """A whole TTSWorkflow object, as ``kubectl get -o json`` shows it."""

    model_config = ConfigDict(populate_by_name=True)

    api_version: str = Field(default=API_GROUP_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta
    # None: a stored spec that this release cannot read (made around the gateway, with kubectl, and
    # refused by the operator); the status says what is wrong with it.
    spec: TTSWorkflowSpec | None
    status: TTSWorkflowStatus = Field(default_factory=TTSWorkflowStatus)

    def to_k8s(self) -> dict[str, Any]:
        if self.spec is None:
            raise ValueError(f"TTSWorkflow {self.metadata.name} has no readable spec to write")
        body: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": self.metadata.model_dump(mode="json", exclude_none=True),
            "spec": self.spec.to_k8s(),
        }
        status = self.status.to_k8s()
        if status != TTSWorkflowStatus().to_k8s():
            body["status"] = status
        return body


__all__ = [
    "Condition",
    "HeartbeatStatus",
    "ObjectMeta",
    "StageStatus",
    "TTSWorkflow",
    "TTSWorkflowSpec",
    "TTSWorkflowStatus",
    "WorkflowConfig",
]
