"""The served OpenAPI document is the API: schemathesis fuzzes every route it lists, on a real
gateway over local mode's record store on a real nats-server, and each answer must be documented
(status, content type, body) and none a 5xx.

A fixed random seed and a bounded number of cases keep it reproducible and short (a few seconds).
"""

from __future__ import annotations

from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.gateway.served import served_gateway
from tts_api.policy import ValidationPolicy

CASES = 400
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_every_answer_is_documented_and_none_is_a_server_error(
    nats_url: str, policy: ValidationPolicy
) -> None:
    # sync_wait_seconds=0: a valid request is answered 202 at once (no operator runs here); a valid
    # speech request would wait for audio no worker makes: 1 s, then 504.
    with served_gateway(nats_url, policy, sync_wait_seconds=0, speech_timeout_seconds=1) as url:
        schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        loaded = [operation for operation in schema.get_all_operations() if isinstance(operation, Ok)]
        operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in loaded}
        assert len(operations) == 15, "every route of the document loads"
        assert {"POST /v1/workflows", "POST /v1/audio/speech", "GET /v1/models"} <= operations
        # A valid speech request waits for audio that no worker here makes (tests/openai has those).
        speaking = schema.exclude(path="/v1/audio/speech")
        cases = st.one_of(
            speaking.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
        )

        @hypothesis.settings(
            max_examples=CASES,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def answer_is_documented(case: Case[Any]) -> None:
            case.call_and_validate(base_url=url, checks=CHECKS, timeout=30)

        answer_is_documented()
