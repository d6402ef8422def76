"""The workflow API's error codes, their HTTP statuses, and the error every component raises and reports."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class ErrorCode(StrEnum):
    """The error codes of the IndexTTS service API (v1) (错误代码), and ``WORKFLOW_NOT_FOUND``.

    ``WORKFLOW_NOT_FOUND`` is added beyond the v1 codes: the gateway's answer for a workflow id that
    names no workflow. No workflow fails with it; every other code is also a workflow's failure.
    """

    INVALID_INPUT = "INVALID_INPUT"
    MODEL_NOT_READY = "MODEL_NOT_READY"
    GPU_UNAVAILABLE = "GPU_UNAVAILABLE"
    INSUFFICIENT_MEMORY = "INSUFFICIENT_MEMORY"
    TASK_TIMEOUT = "TASK_TIMEOUT"
    PROCESSING_ERROR = "PROCESSING_ERROR"
    WORKFLOW_NOT_FOUND = "WORKFLOW_NOT_FOUND"

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self]

    @property
    def user_caused(self) -> bool:
        """True when retrying the same input cannot help: the user must change the request."""
        return self is ErrorCode.INVALID_INPUT


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_INPUT: 400,
    ErrorCode.MODEL_NOT_READY: 503,
    ErrorCode.GPU_UNAVAILABLE: 503,
    ErrorCode.INSUFFICIENT_MEMORY: 503,
    ErrorCode.TASK_TIMEOUT: 408,
    ErrorCode.PROCESSING_ERROR: 500,
    ErrorCode.WORKFLOW_NOT_FOUND: 404,
}


class ErrorInfo(BaseModel):
    """An error as it is stored in status and sent in messages: the API's error code and a message."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, validate_by_alias=True)

    code: ErrorCode = Field(description="One of the workflow API's error codes.")
    message: str = Field(description="What went wrong and what to change.")


class TTSError(Exception):
    """An error with one of the API's codes; ``field`` names the request field at fault, when one is."""

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=self.message)

    def __repr__(self) -> str:
        return f"TTSError({self.code.value}, {self.message!r}, field={self.field!r})"


def invalid_input(field: str, message: str) -> TTSError:
    """A user's mistake in ``field``; the message names the field and says what to change."""
    return TTSError(ErrorCode.INVALID_INPUT, f"{field}: {message}", field=field)
