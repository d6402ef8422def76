"""What the worker does with a job once its task has ended: the decisions, apart from NATS.

| how the task ended | JetStream | event |
| --- | --- | --- |
| succeeded | ack (after the event is stored) | completed |
| failed, the user's fault (``INVALID_INPUT``) | ack | failed, ``retryable=False`` |
| failed transiently, deliveries left | nak with backoff, redelivered | none (the next try reports) |
| failed transiently, no deliveries left | ack | failed, ``retryable=False`` |
| cancelled by the operator | ack | failed (``PROCESSING_ERROR``, "cancelled: ...") |
| past its deadline | ack | failed (``TASK_TIMEOUT``) |
| worker shutting down | nak, no delay: another worker takes it | none |
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tts_api.errors import ErrorCode, TTSError


class Action(StrEnum):
    ACK = "ack"
    NAK = "nak"


class Outcome(StrEnum):
    """Metric label of how a job ended on this worker."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"
    HANDED_BACK = "handed_back"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Disposition:
    action: Action
    outcome: Outcome
    error: TTSError | None = None  # the failed event to publish, if any
    delay: float = 0.0  # nak delay, seconds


def after_failure(error: TTSError, *, delivered: int, max_deliveries: int, retry_delay: float) -> Disposition:
    """A user's mistake is final; anything else is retried until ``max_deliveries`` deliveries."""
    if error.code.user_caused or delivered >= max_deliveries:
        if not error.code.user_caused:
            error = TTSError(
                error.code,
                f"{error.message} (gave up after {delivered} attempt{'s' if delivered != 1 else ''})",
                field=error.field,
            )
        return Disposition(Action.ACK, Outcome.FAILED, error)
    return Disposition(Action.NAK, Outcome.RETRIED, delay=retry_delay * 2 ** (delivered - 1))


def after_cancel(reason: CancelReason, detail: str) -> Disposition:
    if reason is CancelReason.SHUTDOWN:
        return Disposition(Action.NAK, Outcome.HANDED_BACK)
    if reason is CancelReason.DEADLINE:
        error = TTSError(
            ErrorCode.TASK_TIMEOUT,
            f"the job passed its deadline ({detail}); raise the workflow's time limit or shorten the text",
        )
        return Disposition(Action.ACK, Outcome.FAILED, error)
    message = f"cancelled: {detail}" if detail else "cancelled by the operator"
    return Disposition(Action.ACK, Outcome.CANCELLED, TTSError(ErrorCode.PROCESSING_ERROR, message))


def too_many_deliveries(delivered: int, max_deliveries: int) -> TTSError | None:
    """A job delivered more often than allowed (its workers kept dying) is failed without running."""
    if delivered <= max_deliveries:
        return None
    return TTSError(
        ErrorCode.PROCESSING_ERROR,
        f"the job was delivered {delivered} times and no worker finished it (workers died or stalled "
        "while holding it); check the inference pods' logs and memory limits, then retry the workflow",
    )


class CancelReason(StrEnum):
    OPERATOR = "operator"
    DEADLINE = "deadline"
    SHUTDOWN = "shutdown"
