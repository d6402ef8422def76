"""The OpenAPI document, read as a client's generator reads it: no status the gateway never answers
(422), the error body on every error status (the workflow API's, or OpenAI's on the OpenAI-compatible
routes), and the request bodies of ``POST /v1/workflows`` and ``POST /v1/audio/speech``."""

from __future__ import annotations

from typing import Any

from tests.gateway.conftest import GatewayFactory

ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}
OPENAI_ERROR_BODY = {"$ref": "#/components/schemas/OpenAIErrorBody"}
OPENAI_ROUTES = {
    "POST /v1/audio/speech",
    "GET /v1/models",
    "GET /v1/audio/voices",
    "GET /v1/audio/voices/{name}/sample",
    "POST /v1/audio/voices",
    "DELETE /v1/audio/voices/{name}",
}


async def served_document(gateway: GatewayFactory) -> dict[str, Any]:
    async with gateway() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


async def test_every_error_status_has_the_error_body_and_none_is_422(gateway: GatewayFactory) -> None:
    document = await served_document(gateway)
    operations = [
        (f"{method.upper()} {path}", operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) == 15
    assert {name for name, _ in operations} >= OPENAI_ROUTES
    for name, operation in operations:
        responses = operation["responses"]
        assert "422" not in responses, name
        assert {"401", "408", "413", "500", "503"} <= set(responses), name
        body = OPENAI_ERROR_BODY if name in OPENAI_ROUTES else ERROR_BODY
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {"application/json": {"schema": body}}, (name, status)
    for name, operation in operations:
        if "{workflow_id}" in name:
            assert {"400", "404"} <= set(operation["responses"]), name
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_the_post_documents_its_request_body_in_snake_case(gateway: GatewayFactory) -> None:
    document = await served_document(gateway)
    post = document["paths"]["/v1/workflows"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/WorkflowRequest"}
    schemas = document["components"]["schemas"]
    assert set(schemas["WorkflowRequest"]["properties"]) == {"video_path", "workflow_config"}
    assert schemas["WorkflowRequest"]["required"] == ["workflow_config"]
    assert {"workflow_chain", "indextts_config"} <= set(schemas["WorkflowConfig"]["properties"])
    assert "emotion_alpha" in schemas["IndexTTSConfig"]["properties"]
    assert {"200", "202", "400", "408", "500", "503"} <= set(post["responses"])


async def test_the_speech_route_documents_openais_body_and_its_audio_types(gateway: GatewayFactory) -> None:
    document = await served_document(gateway)
    post = document["paths"]["/v1/audio/speech"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SpeechRequest"
    }
    schemas = document["components"]["schemas"]
    assert set(schemas["SpeechRequest"]["required"]) == {"model", "input", "voice"}
    assert {"response_format", "speed", "instructions", "stream_format"} <= set(
        schemas["SpeechRequest"]["properties"]
    )
    assert set(post["responses"]["200"]["content"]) == {
        "audio/mpeg",
        "audio/ogg",
        "audio/aac",
        "audio/flac",
        "audio/wav",
        "audio/pcm",
        "text/event-stream",
    }
