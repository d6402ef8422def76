"""Messages between the operator and the inference pods over NATS JetStream, versioned.

The operator publishes a :class:`JobMessage` per stage attempt (``Nats-Msg-Id`` = its ``job_id``, so a
replay never dispatches twice) and a :class:`CancelMessage` to stop one. Workers publish events:
started, heartbeat, progress, completed, failed. Every message carries ``version``; a reader refuses a
version it does not know with a clear :class:`MessageError` instead of guessing.

Wire format: UTF-8 JSON, snake_case, as written by :func:`encode`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tts_api.constants import TaskName
from tts_api.errors import ErrorInfo
from tts_api.policy import ValidationPolicy
from tts_api.request import IndexTTSConfig
from tts_api.speech_stream import SpeechStream

MESSAGE_VERSION = 1


class MessageError(ValueError):
    """A message that cannot be read: not JSON, an unknown version or kind, or a bad field."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_job_id(workflow_uid: str, task: TaskName, attempt: int) -> str:
    """``uid/stage/attempt``: names one dispatch; used as ``Nats-Msg-Id`` for de-duplication."""
    return f"{workflow_uid}/{task.short}/{attempt}"


class Message(BaseModel):
    # Unknown fields are ignored so that a newer writer of the same version can add optional ones.
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = MESSAGE_VERSION


class WorkflowRef(BaseModel):
    """Which workflow a job belongs to."""

    model_config = ConfigDict(frozen=True)

    uid: str = Field(min_length=1)
    name: str = Field(min_length=1)
    namespace: str | None = None


# --- operator → pods ------------------------------------------------------------------------


class JobMessage(Message):
    """One attempt at one stage of a workflow."""

    kind: Literal["job"] = "job"
    job_id: str = Field(min_length=1)
    workflow: WorkflowRef
    task: TaskName
    attempt: int = Field(ge=1)
    config: IndexTTSConfig | None = None
    model: str | None = Field(
        default=None,
        description="The model the job is for (the request's, else the deployment's default): it is "
        "queued on that model's subject, and a worker serving another refuses it.",
    )
    stream: SpeechStream | None = Field(
        default=None, description="Where the speech is streamed as it is synthesized, instead of a WAV."
    )
    deadline: datetime | None = Field(
        default=None, description="When the operator stops waiting; the worker gives up then."
    )
    dispatched_at: datetime = Field(default_factory=utcnow)


class CancelMessage(Message):
    """Stop the job in hand (the workflow was deleted, cancelled or timed out)."""

    kind: Literal["cancel"] = "cancel"
    job_id: str = Field(min_length=1)
    workflow: WorkflowRef
    reason: str = ""


# --- pods → operator ------------------------------------------------------------------------


class WorkerEventBase(Message):
    job_id: str = Field(min_length=1)
    workflow: WorkflowRef
    task: TaskName
    attempt: int = Field(ge=1)
    pod: str = Field(min_length=1, description="The inference pod's name (the hostname outside Kubernetes).")
    worker_id: str = Field(min_length=1, description="The worker process within the pod.")
    at: datetime = Field(default_factory=utcnow)


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)

    segments_done: int = Field(ge=0)
    segments_total: int = Field(ge=1)

    @property
    def percent(self) -> int:
        return min(100, self.segments_done * 100 // self.segments_total)


class StartedEvent(WorkerEventBase):
    kind: Literal["started"] = "started"
    gpu: str | None = Field(default=None, description="GPU name, or None on CPU.")


class HeartbeatEvent(WorkerEventBase):
    kind: Literal["heartbeat"] = "heartbeat"
    progress: Progress | None = None


class ProgressEvent(WorkerEventBase):
    kind: Literal["progress"] = "progress"
    progress: Progress


class CompletedEvent(WorkerEventBase):
    kind: Literal["completed"] = "completed"
    output: dict[str, Any] = Field(description="The task's result, in the API's shape (tts_api.results).")


class FailedEvent(WorkerEventBase):
    kind: Literal["failed"] = "failed"
    error: ErrorInfo
    retryable: bool = Field(
        default=False, description="True for transient failures (out of GPU memory): try again."
    )
    worker_lost: bool = Field(
        default=False,
        description="The attempt ended because the worker holding it was lost (the job was delivered "
        "again after its holder stopped without finishing it), not because the job failed; the "
        "operator counts it apart from the attempts that failed.",
    )


WorkerEvent = Annotated[
    StartedEvent | HeartbeatEvent | ProgressEvent | CompletedEvent | FailedEvent,
    Field(discriminator="kind"),
]
OperatorCommand = Annotated[JobMessage | CancelMessage, Field(discriminator="kind")]

_EVENT = TypeAdapter[WorkerEvent](WorkerEvent)
_COMMAND = TypeAdapter[OperatorCommand](OperatorCommand)


def encode(message: Message) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def _decode(adapter: TypeAdapter[Any], data: bytes | str, context: dict[str, Any] | None = None) -> Any:
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"not a JSON message: {exc}") from None
    if not isinstance(raw, dict):
        raise MessageError("a message must be a JSON object")
    version = raw.get("version")
    if version != MESSAGE_VERSION:
        raise MessageError(
            f"message version {version!r} is not supported (this build reads version "
            f"{MESSAGE_VERSION}); run the same release of the operator and the inference pods"
        )
    try:
        return adapter.validate_python(raw, context=context)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "message"
        raise MessageError(f"bad {raw.get('kind', 'message')!s} message: {where}: {first['msg']}") from None


def decode_event(data: bytes | str) -> WorkerEvent:
    """Read a worker event; raise :class:`MessageError` when it cannot be read."""
    event: WorkerEvent = _decode(_EVENT, data)
    return event


def decode_command(data: bytes | str, policy: ValidationPolicy | None = None) -> JobMessage | CancelMessage:
    """Read a job or a cancel, its request checked under ``policy`` (the receiver's); raise
    :class:`MessageError` when it cannot be read."""
    context = {"policy": policy} if policy is not None else None
    command: JobMessage | CancelMessage = _decode(_COMMAND, data, context)
    return command
