"""The OpenAI-compatible routes: ``POST /v1/audio/speech`` (audio or server-sent events, streamed as
it is synthesized) and ``GET /v1/models``.

Each speech request is a TTSWorkflow like any other (held to the GPU lock, counted in statistics);
its audio comes back on the request's own NATS subject, never through the workflow store. A client
that goes away cancels its workflow (it is deleted), which stops the job and frees the GPU.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from gateway.app_state import Opened, Policy, Settings
from gateway.backend import WorkflowBackend
from gateway.client_json import parse_client_json
from gateway.metrics import WORKFLOWS_SUBMITTED
from gateway.openai_errors import OpenAIError, OpenAIErrorBody
from gateway.openai_speech import SPEECH_FIELDS, read_speech_request, speech_request_body, speech_spec
from gateway.routes.workflows import finished, new_workflow_name
from gateway.served_models import check_model, served_models
from gateway.speech_relay import BrokenStreamError, SpeechRelay, relay
from tts_api.constants import Phase
from tts_api.errors import ErrorCode
from tts_api.resource import TTSWorkflow
from tts_api.speech_stream import AudioChunk, AudioFormat

log = logging.getLogger(__name__)
router = APIRouter()

# Past the workflow's own time limit, how long the gateway waits for the operator to say it failed.
WAIT_GRACE_SECONDS = 5.0
# After the workflow succeeded, how long the rest of its audio may take to arrive.
DRAIN_SECONDS = 5.0
# Deletions of abandoned workflows, kept until they are done (a cancelled response cannot await them).
_cleanups: set[asyncio.Task[None]] = set()


def failure(description: str) -> dict[str, Any]:
    return {"model": OpenAIErrorBody, "description": description}


# What every OpenAI-compatible route may answer, in OpenAI's error body.
EVERY_FAILURE: dict[int | str, dict[str, Any]] = {
    401: failure("invalid_api_key: the API key is missing or wrong (when one is set)"),
    408: failure("the request body did not arrive within TTS_GATEWAY_BODY_TIMEOUT_SECONDS"),
    413: failure("the request body is larger than TTS_GATEWAY_MAX_BODY_BYTES"),
    500: failure("the synthesis failed, or an unexpected error (the gateway's log has the details)"),
    503: failure("no model ready, no GPU or its memory, NATS or the workflow store unavailable"),
}
AUDIO = {"schema": {"type": "string", "format": "binary"}}
SPEECH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The audio, streamed as it is made; server-sent events with stream_format=sse.",
        "content": {**{f.content_type: AUDIO for f in AudioFormat}, "text/event-stream": AUDIO},
    },
    400: failure("a field is missing or wrong; param names it"),
    404: failure("model_not_found: the model is not served here"),
    409: failure("cancelled: the workflow was deleted before its speech was made"),
    502: failure("stream_broken: the audio stream broke"),
    504: failure("task_timeout: not finished within TTS_GATEWAY_SPEECH_TIMEOUT_SECONDS"),
    **EVERY_FAILURE,
}


class ModelEntry(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    ready: bool


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelEntry]


@router.post(
    "/v1/audio/speech",
    summary="Speech from text (OpenAI-compatible)",
    response_class=StreamingResponse,
    responses=SPEECH_RESPONSES,
    openapi_extra=speech_request_body(),
)
async def create_speech(request: Request, opened: Opened, settings: Settings, policy: Policy) -> Response:
    speech = read_speech_request(parse_client_json(await request.body()))
    directory = opened.directory()
    check_model(speech.model, served_models(await directory.entries()))
    spec = speech_spec(
        speech,
        policy,
        settings.openai_voices,
        timeout_seconds=max(1, math.ceil(settings.speech_timeout_seconds)),
    )
    assert spec.speech_stream is not None  # noqa: S101 (speech_spec sets it)
    backend = opened.backend()
    stack = contextlib.AsyncExitStack()
    audio = await stack.enter_async_context(relay(directory.client, spec.speech_stream.id))
    name: str | None = None
    try:
        workflow = await backend.create(new_workflow_name(), spec)
        name = workflow.metadata.name
        WORKFLOWS_SUBMITTED.labels("speech").inc()
        log.info(
            "speech workflow %s created (%s, %d characters)", name, speech.response_format, len(speech.input)
        )
        outcome = asyncio.create_task(
            backend.wait(name, finished, settings.speech_timeout_seconds + WAIT_GRACE_SECONDS)
        )
        stack.callback(outcome.cancel)
        first = await _next(audio, outcome)
        if not isinstance(first, AudioChunk):
            raise _failure(first, name)
    except BaseException:
        _clean_up(stack, backend, name, abandoned=True)
        raise
    headers = {"X-Workflow-Id": name}
    if speech.stream_format == "sse":
        return StreamingResponse(
            _events(first, audio, outcome, stack, backend, name),
            media_type="text/event-stream",
            headers=headers,
        )
    return StreamingResponse(
        _audio(first, audio, outcome, stack, backend, name),
        media_type=speech.response_format.content_type,
        headers=headers,
    )


async def _audio(
    first: AudioChunk,
    audio: SpeechRelay,
    outcome: asyncio.Task[TTSWorkflow | None],
    stack: contextlib.AsyncExitStack,
    backend: WorkflowBackend,
    name: str,
) -> AsyncIterator[bytes]:
    done = False
    try:
        async for chunk in _chunks(first, audio, outcome, name):
            if chunk.data:
                yield chunk.data
        done = True
    finally:
        _clean_up(stack, backend, name, abandoned=not done)


async def _events(
    first: AudioChunk,
    audio: SpeechRelay,
    outcome: asyncio.Task[TTSWorkflow | None],
    stack: contextlib.AsyncExitStack,
    backend: WorkflowBackend,
    name: str,
) -> AsyncIterator[str]:
    done = False
    try:
        try:
            async for chunk in _chunks(first, audio, outcome, name):
                if chunk.data:
                    yield _event(
                        {"type": "speech.audio.delta", "audio": base64.b64encode(chunk.data).decode()}
                    )
        except OpenAIError as failure:
            yield _event({"type": "error", "error": {"message": failure.message, "code": failure.code}})
            return
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        yield _event({"type": "speech.audio.done", "usage": usage})
        done = True
    finally:
        _clean_up(stack, backend, name, abandoned=not done)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


async def _chunks(
    first: AudioChunk, audio: SpeechRelay, outcome: asyncio.Task[TTSWorkflow | None], name: str
) -> AsyncIterator[AudioChunk]:
    """The chunks up to the last; raises OpenAIError when the speech cannot be finished."""
    chunk: AudioChunk | TTSWorkflow | None = first
    while True:
        if isinstance(chunk, AudioChunk):
            yield chunk
            if chunk.end:
                return
            chunk = await _next(audio, outcome)
            continue
        if chunk is not None and chunk.status.phase is Phase.SUCCEEDED:
            # Succeeded: the rest of its audio is on its way (or was lost).
            try:
                chunk = await asyncio.wait_for(_checked(audio), DRAIN_SECONDS)
            except TimeoutError:
                raise OpenAIError(
                    502, f"the audio of workflow {name} stopped before its end", code="stream_broken"
                ) from None
            continue
        raise _failure(chunk, name)


async def _checked(audio: SpeechRelay) -> AudioChunk:
    try:
        return await audio.next()
    except BrokenStreamError as exc:
        raise OpenAIError(502, f"the audio stream broke: {exc}", code="stream_broken") from None


async def _next(
    audio: SpeechRelay, outcome: asyncio.Task[TTSWorkflow | None]
) -> AudioChunk | TTSWorkflow | None:
    """The next chunk, or the workflow once it has finished (None: it is gone), whichever comes first."""
    if not outcome.done():
        chunk = asyncio.ensure_future(_checked(audio))
        await asyncio.wait({chunk, outcome}, return_when=asyncio.FIRST_COMPLETED)
        if chunk.done():
            return chunk.result()
        chunk.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await chunk
    return outcome.result()


def _failure(workflow: TTSWorkflow | None, name: str) -> OpenAIError:
    """Why a workflow gave no (more) audio, with the status its error code has."""
    if workflow is None:
        return OpenAIError(409, f"workflow {name} was deleted before its speech was made", code="cancelled")
    error = workflow.status.error
    if workflow.status.phase.finished and error is not None:
        # A worker names the synthesis's field at fault first ("reference_audio: ..."): the request's.
        field = error.message.split(":", 1)[0].strip()
        return OpenAIError(
            error.code.http_status,
            error.message,
            param=SPEECH_FIELDS.get(field),
            code=error.code.value.lower(),
        )
    if not workflow.status.phase.finished:
        return OpenAIError(
            504,
            f"workflow {name} did not finish in time; it was cancelled",
            code=ErrorCode.TASK_TIMEOUT.value.lower(),
        )
    return OpenAIError(502, f"workflow {name} succeeded but sent no audio", code="stream_broken")


def _clean_up(
    stack: contextlib.AsyncExitStack, backend: WorkflowBackend, name: str | None, *, abandoned: bool
) -> None:
    """Close the subscription and, for speech nobody will hear, delete its workflow (its job stops)."""

    async def clean_up() -> None:
        await stack.aclose()
        if not abandoned or name is None:
            return
        with contextlib.suppress(Exception):
            current = await backend.get(name)
            # A finished one stays, failures included, to be seen in the views until its time to live.
            if current is not None and not finished(current) and await backend.delete(name):
                log.info("speech workflow %s cancelled: its client went away", name)

    task = asyncio.get_running_loop().create_task(clean_up())
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)


@router.get(
    "/v1/models",
    summary="The models served here (OpenAI-compatible)",
    response_model=ModelList,
    responses=EVERY_FAILURE,
)
async def list_models(opened: Opened) -> ModelList:
    models = served_models(await opened.directory().entries())
    return ModelList(
        data=[
            ModelEntry(id=model, created=state.created, owned_by="indextts-k8s", ready=state.ready)
            for model, state in sorted(models.items())
        ]
    )
