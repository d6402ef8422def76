"""The workflow API: create a workflow (``POST /v1/workflows``), its status, its result, its audio,
and delete it.

Synchronous by default, like the IndexTTS service API (v1): ``POST /v1/workflows`` waits for the
result up to ``TTS_GATEWAY_SYNC_WAIT_SECONDS``. Asynchronous on request (``?async=true`` or the
header ``Prefer: respond-async``): ``202`` with the workflow id at once.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response

from gateway.app_state import Opened, Policy, Settings
from gateway.backend import BackendUnavailableError, finished
from gateway.captions import webvtt
from gateway.client_json import parse_client_json
from gateway.error_bodies import error_json, not_found
from gateway.metrics import WORKFLOWS_SUBMITTED
from gateway.openapi import WORKFLOW_FAILURES, Responses, error, request_body
from gateway.presenters import result_response, status_response, status_url
from gateway.responses import (
    AcceptedResponse,
    DeletedResponse,
    ErrorResponse,
    WorkflowResult,
    WorkflowStatusResponse,
)
from gateway.serving_log import log
from tts_api.constants import Phase
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow, TTSWorkflowSpec
from tts_api.results import SpeechResult
from tts_api.shared_paths import SharedPathError
from tts_api.validation import parse_request
from tts_api.voices import is_voice_name
from voice_library.library import VoiceLibrary
from voice_library.store import VoiceLibraryUnavailableError

router = APIRouter()

# A workflow id is its TTSWorkflow's name: a Kubernetes object name (an RFC 1123 subdomain), which
# is also a valid NATS KV key (local mode's records).
WORKFLOW_ID = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
WORKFLOW_ID_MAX_LENGTH = 253


def new_workflow_name() -> str:
    """A fresh name, valid as a Kubernetes object name and a NATS KV key."""
    return f"wf-{uuid.uuid4().hex[:16]}"


def is_workflow_id(text: str) -> bool:
    return len(text) <= WORKFLOW_ID_MAX_LENGTH and WORKFLOW_ID.fullmatch(text) is not None


def checked_workflow_id(
    workflow_id: Annotated[str, Path(description="The id POST /v1/workflows returned (wf-…).")],
) -> str:
    """The path's id, refused with 400 ``INVALID_INPUT`` naming ``workflow_id`` when no workflow can
    have it, before either backend is asked (neither could hold it; NATS would refuse the key)."""
    if not is_workflow_id(workflow_id):
        raise invalid_input(
            "workflow_id",
            f"{workflow_id!r} is not a workflow id: an id is a Kubernetes object name (lowercase "
            "letters, digits, '-' and '.', at most 253 characters), as returned by POST /v1/workflows",
        )
    return workflow_id


WorkflowId = Annotated[str, Depends(checked_workflow_id)]
# What the routes taking a workflow id answer for one that is malformed or names no workflow.
ID_ERRORS: Responses = {
    400: error("INVALID_INPUT (field workflow_id): not a workflow id"),
    404: error("WORKFLOW_NOT_FOUND: no workflow has this id"),
}
RESULT = {"model": WorkflowResult, "description": "The finished workflow's result (the workflow API's shape)"}


def wants_async(request: Request) -> bool:
    flag = request.query_params.get("async", "").lower() in {"1", "true", "yes"}
    return flag or "respond-async" in request.headers.get("prefer", "").lower()


def result_json(workflow: TTSWorkflow) -> JSONResponse:
    """The result of a finished workflow, its error, or its status (202) while it runs."""
    result = result_response(workflow)
    if result is None:
        return JSONResponse(status_response(workflow).model_dump(mode="json"), status_code=202)
    if isinstance(result, ErrorResponse):
        return error_json(result, result.error_code.http_status)
    return JSONResponse(result.model_dump(mode="json"))


async def knowing_voices(policy: ValidationPolicy, body: Any, library: VoiceLibrary) -> ValidationPolicy:
    """``policy`` knowing, besides the presets, the stored voices the body names (only those: the
    library is not listed for every request)."""
    if policy.voice_presets is None or not isinstance(body, dict):
        return policy
    workflow_config = body.get("workflow_config")
    config = workflow_config.get("indextts_config") if isinstance(workflow_config, dict) else None
    if not isinstance(config, dict):
        return policy
    named = {config.get("reference_audio"), config.get("emotion_reference")}
    wanted = {n for n in named if isinstance(n, str) and n not in policy.voice_presets and is_voice_name(n)}
    try:
        found = {name for name in wanted if await library.find(name) is not None}
    except VoiceLibraryUnavailableError as exc:
        raise BackendUnavailableError(str(exc)) from None
    return policy.knowing_voices(found)


@router.post(
    "/v1/workflows",
    summary="Create a workflow (the workflow API's four tasks)",
    openapi_extra=request_body(),
    responses={
        200: RESULT,
        202: {"model": AcceptedResponse, "description": "Accepted: asynchronous, or still running"},
        **WORKFLOW_FAILURES,
    },
)
async def create_workflow(
    request: Request, opened: Opened, settings: Settings, policy: Policy
) -> JSONResponse:
    body = parse_client_json(await request.body())
    accepted = parse_request(body, policy=await knowing_voices(policy, body, opened.library()))
    spec = TTSWorkflowSpec.from_request(accepted)
    workflow = await opened.backend().create(new_workflow_name(), spec)
    name = workflow.metadata.name
    WORKFLOWS_SUBMITTED.labels("async" if wants_async(request) else "sync").inc()
    log.info("workflow %s created: %s", name, ", ".join(t.value for t in spec.workflow_config.workflow_chain))
    if not wants_async(request):
        done = await opened.backend().wait(name, finished, settings.sync_wait_seconds)
        if done is not None and finished(done):
            return result_json(done)
    accepted_body = AcceptedResponse(workflow_id=name, status_url=status_url(workflow))
    return JSONResponse(accepted_body.model_dump(mode="json"), status_code=202)


@router.get(
    "/v1/workflows/status/{workflow_id}",
    summary="The workflow's status",
    response_model=WorkflowStatusResponse,
    responses=ID_ERRORS,
)
async def workflow_status(workflow_id: WorkflowId, opened: Opened) -> Response:
    workflow = await opened.backend().get(workflow_id)
    if workflow is None:
        return not_found(workflow_id)
    return JSONResponse(status_response(workflow).model_dump(mode="json"))


@router.get(
    "/v1/workflows/{workflow_id}",
    summary="The workflow's result, or its status while it runs",
    responses={
        200: RESULT,
        202: {"model": WorkflowStatusResponse, "description": "The workflow runs: its status"},
        **WORKFLOW_FAILURES,
        **ID_ERRORS,
        400: error("INVALID_INPUT: not a workflow id (field workflow_id), or the workflow failed so"),
    },
)
async def workflow_result(workflow_id: WorkflowId, opened: Opened) -> Response:
    workflow = await opened.backend().get(workflow_id)
    if workflow is None:
        return not_found(workflow_id)
    return result_json(workflow)


def speech_of(workflow: TTSWorkflow, workflow_id: str, what: str) -> SpeechResult:
    """The workflow's speech result; ``INVALID_INPUT`` saying why there is no ``what`` yet."""
    result = workflow.status.result
    if workflow.status.phase is not Phase.SUCCEEDED or result is None:
        state = workflow.status.phase.value.lower()
        raise TTSError(
            ErrorCode.INVALID_INPUT,
            f"workflow {workflow_id} has no {what} (it is {state}; there is none until "
            "indextts.generate_speech has succeeded)",
        )
    return result


@router.get(
    "/v1/workflows/{workflow_id}/audio",
    response_class=FileResponse,
    summary="Download the WAV",
    responses={
        200: {
            "description": "The WAV file",
            "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
        },
        **ID_ERRORS,
        400: error("INVALID_INPUT: not a workflow id (field workflow_id), or the workflow has no audio yet"),
        500: error("PROCESSING_ERROR: the shared volume is not mounted here, or the file is gone"),
    },
)
async def workflow_audio(workflow_id: WorkflowId, opened: Opened, policy: Policy) -> Response:
    workflow = await opened.backend().get(workflow_id)
    if workflow is None:
        return not_found(workflow_id)
    result = speech_of(workflow, workflow_id, "audio")
    if result.output_path is None:
        raise TTSError(
            ErrorCode.INVALID_INPUT,
            f"workflow {workflow_id} kept no audio file: its speech was streamed to the client that asked",
        )
    root = policy.shared_root
    if not root.is_mounted():
        raise TTSError(
            ErrorCode.PROCESSING_ERROR,
            f"this gateway cannot read the shared volume at {root.directory}; mount it "
            "(TTS_SHARED_DIR) to serve audio",
        )
    try:
        path = root.local_path(result.output_path)
    except SharedPathError as exc:
        raise TTSError(ErrorCode.PROCESSING_ERROR, f"output_path: {exc}") from None
    if not path.is_file():
        raise TTSError(ErrorCode.PROCESSING_ERROR, f"{result.output_path} is no longer on the shared volume")
    return FileResponse(path, media_type="audio/wav", filename=path.name)


@router.get(
    "/v1/workflows/{workflow_id}/captions.vtt",
    response_class=Response,
    summary="The speech's captions (WebVTT)",
    responses={
        200: {
            "description": "One cue per segment spoken",
            "content": {"text/vtt": {"schema": {"type": "string"}}},
        },
        **ID_ERRORS,
        400: error("INVALID_INPUT: not a workflow id (field workflow_id), or the workflow has no speech yet"),
    },
)
async def workflow_captions(workflow_id: WorkflowId, opened: Opened) -> Response:
    workflow = await opened.backend().get(workflow_id)
    if workflow is None:
        return not_found(workflow_id)
    result = speech_of(workflow, workflow_id, "captions")
    return PlainTextResponse(webvtt(result.segments), media_type="text/vtt")


@router.delete(
    "/v1/workflows/{workflow_id}",
    summary="Cancel and delete a workflow",
    response_model=DeletedResponse,
    responses=ID_ERRORS,
)
async def delete_workflow(workflow_id: WorkflowId, opened: Opened) -> Response:
    if not await opened.backend().delete(workflow_id):
        return not_found(workflow_id)
    log.info("workflow %s deleted on request", workflow_id)
    return JSONResponse(DeletedResponse(workflow_id=workflow_id).model_dump(mode="json"))
