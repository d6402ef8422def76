"""The OpenAPI document as the gateway answers: every status each route answers, with the workflow
API's error body; ``POST /v1/workflows``'s request body (the request model, snake_case as the API
takes it); and no 422, which the gateway never answers (invalid parameters are 400 ``INVALID_INPUT``).

Each route declares its own statuses where it is defined; the ones every route of the workflow API
and of monitoring may answer are :data:`EVERY_ROUTE_ERRORS`, added where the routers are included.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from gateway.openai_speech import SpeechRequest
from gateway.responses import ErrorResponse
from tts_api.request import WorkflowRequest

Responses = dict[int | str, dict[str, Any]]

COMPONENTS = "#/components/schemas/{model}"


def error(description: str) -> dict[str, Any]:
    """A status answered with the workflow API's error body."""
    return {"model": ErrorResponse, "description": description}


EVERY_ROUTE_ERRORS: Responses = {
    401: error("INVALID_INPUT (field X-API-Key): the API key is missing or wrong (when one is set)"),
    408: error("INVALID_INPUT: the request body did not arrive within TTS_GATEWAY_BODY_TIMEOUT_SECONDS"),
    413: error("INVALID_INPUT: the request body is larger than TTS_GATEWAY_MAX_BODY_BYTES"),
    500: error("PROCESSING_ERROR: an unexpected error; the gateway's log has the details"),
    503: error(
        "PROCESSING_ERROR: the workflow store is down or full; nothing was done, send it again "
        "after Retry-After"
    ),
}

# What a failed workflow answers with: its error code's HTTP status (tts_api/errors.py).
WORKFLOW_FAILURES: Responses = {
    400: error("INVALID_INPUT: the request is invalid (the field at fault in `field`)"),
    408: error("TASK_TIMEOUT: the workflow ran out of time (or the request body was too slow)"),
    500: error("PROCESSING_ERROR: the workflow failed"),
    503: error(
        "MODEL_NOT_READY, GPU_UNAVAILABLE or INSUFFICIENT_MEMORY: the workflow failed; or "
        "PROCESSING_ERROR: the workflow store is down or full (send it again after Retry-After)"
    ),
}

REQUEST_BODY_NAME = WorkflowRequest.__name__


def request_body() -> dict[str, Any]:
    """``openapi_extra`` for ``POST /v1/workflows``: the body is read by the route itself (so that
    every error names its field as the workflow API spells it), and described here."""
    schema = {"$ref": COMPONENTS.format(model=REQUEST_BODY_NAME)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def request_schemas() -> dict[str, Any]:
    """The request models (the workflow API's, snake_case, and the speech request's) and the models
    they use, as components."""
    schemas: dict[str, Any] = {}
    for model in (WorkflowRequest, SpeechRequest):
        schema = model.model_json_schema(by_alias=False, ref_template=COMPONENTS)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def without_422(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents 422 for every route with parameters; the gateway answers 400 instead."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve the document above at ``/openapi.json`` (built once, on the first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            document.setdefault("components", {}).setdefault("schemas", {}).update(request_schemas())
            app.openapi_schema = without_422(document)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
