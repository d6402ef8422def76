"""Which key a request presents, and whether it is accepted."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from gateway.auth import key_accepted, presented_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"X-API-Key": "s3cret"}, "s3cret"),
        ({"x-api-key": " s3cret "}, "s3cret"),
        ({"Authorization": "Bearer s3cret"}, "s3cret"),
        ({"authorization": "bearer s3cret"}, "s3cret"),
        ({"Authorization": "Basic czNjcmV0"}, None),
        ({"Authorization": "Bearer "}, None),
        ({}, None),
        ({"X-API-Key": "from-header", "Authorization": "Bearer from-bearer"}, "from-header"),
    ],
)
def test_presented_key(headers: dict[str, str], key: str | None) -> None:
    assert presented_key(Headers(headers)) == key


@pytest.mark.parametrize(
    ("presented", "configured", "accepted"),
    [
        (None, None, True),
        ("anything", None, True),
        (None, "", True),
        (None, "s3cret", False),
        ("s3cret", "s3cret", True),
        ("s3cre", "s3cret", False),
        ("s3cret!", "s3cret", False),
        ("密钥", "密钥", True),
    ],
)
def test_key_accepted(presented: str | None, configured: str | None, accepted: bool) -> None:
    assert key_accepted(presented, configured) is accepted
