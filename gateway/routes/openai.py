"""The OpenAI-compatible routes: ``POST /v1/audio/speech`` (audio or server-sent events, streamed as
it is synthesized) and ``GET /v1/models``.

Each speech request is a TTSWorkflow like any other (held to the GPU lock, counted in statistics);
its audio comes back on the request's own NATS subject, never through the workflow store. A client
that goes away cancels its workflow (it is deleted), which stops the job and frees the GPU.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from gateway.app_state import Opened, Policy, Settings
from gateway.client_json import parse_client_json
from gateway.metrics import WORKFLOWS_SUBMITTED
from gateway.openai_errors import OpenAIError, OpenAIErrorBody
from gateway.openai_speech import read_speech_request, speech_request_body, speech_spec, speech_voice
from gateway.routes.workflows import new_workflow_name
from gateway.served_models import requested_model, served_models
from gateway.speech_flight import SpeechInFlight
from gateway.speech_relay import relay
from tts_api.speech_stream import AudioFormat

log = logging.getLogger(__name__)
router = APIRouter()

# Past the workflow's own time limit, how long the gateway waits for the operator to say it failed.
WAIT_GRACE_SECONDS = 5.0


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
    ready: bool = Field(description="A worker serving it has the model loaded.")
    workers: int = Field(description="Workers (one job each at a time) serving it.")
    ready_workers: int = Field(description="Of those, the ones with the model loaded.")
    idle_workers: int = Field(description="Of those, the ones ready and holding no job now.")
    languages: list[str] = Field(description="Language codes it speaks.")


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
    served = served_models(await directory.entries())
    model = requested_model(speech.model, policy.models, served, wait_for_workers=settings.wait_for_workers)
    voice = await speech_voice(speech.voice_name, opened.library(), settings.openai_voices)
    spec = speech_spec(
        speech,
        policy,
        voice,
        model=model,
        timeout_seconds=max(1, math.ceil(settings.speech_timeout_seconds)),
    )
    assert spec.speech_stream is not None  # noqa: S101 (speech_spec sets it)
    backend = opened.backend()
    stack = contextlib.AsyncExitStack()
    audio = await stack.enter_async_context(relay(directory.client, spec.speech_stream.id))
    flight = SpeechInFlight(audio, stack, backend)
    try:
        workflow = await backend.create(new_workflow_name(), spec)
        flight.name = name = workflow.metadata.name
        WORKFLOWS_SUBMITTED.labels("speech").inc()
        log.info(
            "speech workflow %s created (%s, %d characters)", name, speech.response_format, len(speech.input)
        )
        flight.follow(settings.speech_timeout_seconds + WAIT_GRACE_SECONDS)
        await flight.first()
    except BaseException:
        flight.clean_up(abandoned=True)
        raise
    headers = {"X-Workflow-Id": name}
    if speech.stream_format == "sse":
        return StreamingResponse(_events(flight), media_type="text/event-stream", headers=headers)
    return StreamingResponse(_audio(flight), media_type=speech.response_format.content_type, headers=headers)


async def _audio(flight: SpeechInFlight) -> AsyncIterator[bytes]:
    done = False
    try:
        async for chunk in flight.chunks():
            if chunk.data:
                yield chunk.data
        done = True
    finally:
        flight.clean_up(abandoned=not done)


async def _events(flight: SpeechInFlight) -> AsyncIterator[str]:
    done = False
    try:
        try:
            async for chunk in flight.chunks():
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
        flight.clean_up(abandoned=not done)


def _event(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


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
            ModelEntry(
                id=model,
                created=state.created,
                owned_by="indextts-k8s",
                ready=state.ready,
                workers=state.workers,
                ready_workers=state.ready_workers,
                idle_workers=state.idle_workers,
                languages=sorted(state.languages),
            )
            for model, state in sorted(models.items())
        ]
    )
