"""Client JSON, read so that no body can make the gateway fail: every way a body can be unreadable
is the workflow API's ``INVALID_INPUT`` (400) saying what to change, never a 500.

Python's ``json`` raises ``RecursionError`` on arrays or objects nested about a thousand deep and
``ValueError`` on an integer of more than 4,300 digits; it also reads ``NaN`` and ``Infinity``,
which are not JSON and which no answer could echo back. Each is refused here, and so is nesting
deeper than :data:`MAX_DEPTH` (no request of the workflow API nests more than a few levels).
"""

from __future__ import annotations

import json
from typing import Any

from tts_api.errors import ErrorCode, TTSError

MAX_DEPTH = 32
MAX_INTEGER_DIGITS = 4300  # Python's own limit on turning digits into an int


def refused(reason: str) -> TTSError:
    return TTSError(ErrorCode.INVALID_INPUT, f"the request body {reason}")


def refuse_constant(name: str) -> Any:
    raise refused(f"is not valid JSON: {name} is not a JSON value; send a finite number")


def bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise refused(f"holds an integer of more than {MAX_INTEGER_DIGITS} digits; send a shorter number")
    return int(digits)


def too_deep() -> TTSError:
    return refused(f"nests arrays and objects deeper than {MAX_DEPTH} levels; send the request's own shape")


def parse_client_json(raw: bytes) -> Any:
    """The JSON value of a request body (None for an empty one), or ``INVALID_INPUT``."""
    if not raw:
        return None
    try:
        value = json.loads(raw, parse_constant=refuse_constant, parse_int=bounded_int)
    except UnicodeDecodeError as exc:
        raise refused(f"is not UTF-8 JSON ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise too_deep() from None
    except ValueError as exc:  # json.JSONDecodeError
        raise refused(f"is not valid JSON: {exc}") from None
    if depth_exceeds(value, MAX_DEPTH):
        raise too_deep()
    return value


def depth_exceeds(value: Any, limit: int) -> bool:
    """True when arrays and objects nest more than ``limit`` levels in ``value`` (no recursion)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children)
    return False
