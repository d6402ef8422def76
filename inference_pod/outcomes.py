"""What the worker does with a job once its task has ended: the decisions, apart from NATS.

The worker never retries a job by itself. Retries are the operator's (docs/operator.md): it counts a
stage's attempts and dispatches the next one. A worker reports each ending once and acknowledges the
message; only a hand-back on shutdown puts the same attempt back on the queue.

| how the task ended | JetStream | event |
| --- | --- | --- |
| succeeded | ack (after the event is stored) | completed |
| failed, the user's fault (``INVALID_INPUT``) | ack | failed, ``retryable=False`` |
| failed, not the user's fault but final (:class:`FinalError`) | ack | failed, ``retryable=False`` |
| failed otherwise (out of GPU memory, model not ready, ...) | ack | failed, ``retryable=True`` |
| redelivered: the worker holding it stopped without finishing | ack, not run | failed, ``retryable=True`` |
| cancelled by the operator | ack | failed (``PROCESSING_ERROR``, "cancelled: ...") |
| past its deadline | ack | failed (``TASK_TIMEOUT``) |
| worker shutting down | hand back: a fresh copy on the queue, then ack | none |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from tts_api.errors import ErrorCode, TTSError

# The header a handed-back copy of a job carries: how many times that attempt was handed back.
HANDED_BACK_HEADER = "Tts-Handed-Back"


class Action(StrEnum):
    ACK = "ack"
    HAND_BACK = "hand_back"  # a fresh copy of the job on the queue, then ack the delivered one


class Outcome(StrEnum):
    """Metric label of how a job ended on this worker."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"
    REJECTED = "rejected"


class FinalError(TTSError):
    """A failure no retry can fix, though the request is fine: the shared volume is read-only or full.

    Another attempt would run seconds later (the operator's backoff) and meet the same volume, after
    spending a whole synthesis; an operator must act first, and the message says what to do.
    """


@dataclass(frozen=True)
class Disposition:
    action: Action
    outcome: Outcome
    error: TTSError | None = None  # the failed event to publish, if any
    retryable: bool = False  # the failed event's ``retryable``: may the operator try another attempt?


def after_failure(error: TTSError) -> Disposition:
    """Reported once and acknowledged; another attempt is the operator's decision unless the user
    erred or no attempt can succeed before an operator acts (:class:`FinalError`)."""
    retryable = not error.code.user_caused and not isinstance(error, FinalError)
    return Disposition(Action.ACK, Outcome.FAILED, error, retryable=retryable)


def after_cancel(reason: CancelReason, detail: str) -> Disposition:
    if reason is CancelReason.SHUTDOWN:
        return Disposition(Action.HAND_BACK, Outcome.HANDED_BACK)
    if reason is CancelReason.DEADLINE:
        error = TTSError(
            ErrorCode.TASK_TIMEOUT,
            f"the job passed its deadline ({detail}); raise the workflow's time limit or shorten the text",
        )
        return Disposition(Action.ACK, Outcome.FAILED, error)
    message = f"cancelled: {detail}" if detail else "cancelled by the operator"
    return Disposition(Action.ACK, Outcome.CANCELLED, TTSError(ErrorCode.PROCESSING_ERROR, message))


def after_redelivery(attempt: int, delivered: int) -> Disposition | None:
    """A message delivered again was not finished by the worker that held it: it died or stalled.

    JetStream delivers a message again only when its holder did not acknowledge it in time (this
    worker never naks: a hand-back on shutdown publishes a fresh copy, delivered for the first time).
    Running it again here would be an attempt the operator never counted, so it is reported as a
    retryable failure of its attempt, not run, and acknowledged; the operator decides what follows.
    """
    if delivered <= 1:
        return None
    error = TTSError(
        ErrorCode.PROCESSING_ERROR,
        f"the worker holding attempt {attempt} stopped without finishing it (delivered {delivered} "
        "times); check the inference pods' logs and memory limits",
    )
    return Disposition(Action.ACK, Outcome.ABANDONED, error, retryable=True)


def handed_back_count(headers: Mapping[str, str] | None) -> int:
    """How many times the attempt in this message was handed back before (0 for the operator's own)."""
    value = (headers or {}).get(HANDED_BACK_HEADER, "0")
    return int(value) if value.isdigit() else 0


class CancelReason(StrEnum):
    OPERATOR = "operator"
    DEADLINE = "deadline"
    SHUTDOWN = "shutdown"
