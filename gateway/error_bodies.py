"""The error bodies of the workflow API, as JSON responses: any error, a ``TTSError``, no such workflow."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from gateway.responses import ErrorResponse
from tts_api.errors import ErrorCode, TTSError


def error_json(error: ErrorResponse, status_code: int) -> JSONResponse:
    """Every key of the workflow API's error body is present, null when unknown (its clients index
    them)."""
    return JSONResponse(error.model_dump(mode="json"), status_code=status_code)


def tts_error_json(
    exc: TTSError, *, status_code: int | None = None, workflow_id: str | None = None
) -> JSONResponse:
    body = ErrorResponse(error=exc.message, error_code=exc.code, field=exc.field, workflow_id=workflow_id)
    return error_json(body, status_code or exc.code.http_status)


def not_found(workflow_id: str) -> JSONResponse:
    """No workflow has this id: 404 ``WORKFLOW_NOT_FOUND``, naming it in ``workflow_id``."""
    return tts_error_json(
        TTSError(
            ErrorCode.WORKFLOW_NOT_FOUND,
            f"no workflow {workflow_id!r}: check the id returned by POST /v1/workflows "
            "(finished workflows are deleted after their time to live)",
        ),
        workflow_id=workflow_id,
    )
