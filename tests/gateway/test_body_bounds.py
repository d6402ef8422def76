"""The request body as a client can spoil it: JSON no parser should be asked to build, a body over
the size limit, a body that never finishes. Each is the workflow API's error body, never a 500, and
a slow body does not hold its connection."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import GatewayFactory
from tests.gateway.served import served_gateway
from tts_api.policy import ValidationPolicy


def refusal(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert (body["status"], body["error_code"]) == ("error", "INVALID_INPUT")
    assert set(body) == {"status", "error", "error_code", "task_id", "workflow_id", "field"}
    return body


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"[" * 1000 + b"]" * 1000, "deeper than 32 levels"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "deeper than 32 levels"),
        (b'{"workflow_config": ' + b"7" * 5000 + b"}", "more than 4300 digits"),
        (b'{"workflow_config": NaN}', "NaN is not a JSON value"),
        (b'{"workflow_config": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"workflow_config": "\xff"}', "is not UTF-8"),
        (b'{"workflow_config": ', "is not valid JSON"),
    ],
)
async def test_json_no_request_has_is_400_invalid_input(
    raw: bytes, says: str, gateway: GatewayFactory
) -> None:
    async with gateway() as client:
        response = await client.post(
            "/v1/workflows", content=raw, headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert says in refusal(response)["error"]


async def pieces(body: bytes) -> AsyncIterator[bytes]:
    """``body`` sent chunked, with no Content-Length."""
    yield body[:90]
    yield body[90:]


async def test_a_body_over_the_limit_is_413_naming_it(gateway: GatewayFactory) -> None:
    body = json.dumps({"workflow_config": {"workflow_chain": ["indextts.health_check"], "pad": "x" * 200}})
    async with gateway(max_body_bytes=100) as client:
        declared = await client.post("/v1/workflows", content=body)
        streamed = await client.post("/v1/workflows", content=pieces(body.encode()))
        small = await client.post("/v1/workflows", content=b"{}")
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "larger than 100 bytes (TTS_GATEWAY_MAX_BODY_BYTES)" in refusal(response)["error"]
    assert small.status_code == 400, "a body within the limit reaches the route"


def read_answer(connection: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


def test_a_body_that_never_finishes_is_408_and_its_connection_closed(
    nats_url: str, policy: ValidationPolicy
) -> None:
    with served_gateway(nats_url, policy, body_timeout_seconds=0.5) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /v1/workflows HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"workflow_config": '
            )
            answer = read_answer(connection)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["error_code"] == "INVALID_INPUT"
    assert "within 0.5 s (TTS_GATEWAY_BODY_TIMEOUT_SECONDS)" in error["error"]


def test_a_body_sent_in_time_in_pieces_is_read_whole(nats_url: str, policy: ValidationPolicy) -> None:
    with served_gateway(nats_url, policy, body_timeout_seconds=30) as url:
        body = b'{"workflow_config": {"workflow_chain": ["indextts.nope"]}}'
        response = httpx.post(f"{url}/v1/workflows", content=iter([body[:7], body[7:]]), timeout=30)
    assert response.status_code == 400
    assert refusal(response)["field"] == "workflow_config.workflow_chain[0]"


def test_a_client_without_the_key_is_refused_before_its_body_is_read(
    nats_url: str, policy: ValidationPolicy
) -> None:
    """401 at once, not 408 after the body's time: the gateway reads no body for such a client."""
    with served_gateway(
        nats_url, policy, api_key="body-test-key-0123456789", body_timeout_seconds=600
    ) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=30) as connection:
            connection.sendall(
                b"POST /v1/workflows HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n" + b'{"workflow_config": '
            )
            head = connection.recv(65536)  # the answer, while the body is still owed
    assert head.startswith(b"HTTP/1.1 401 "), head[:100]
