"""Conditions: lastTransitionTime moves only when a condition's status changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tts_api.constants import ConditionStatus, ConditionType
from tts_api.resource import Condition
from tts_operator.conditions import set_condition
from tts_operator.runner import merge_patch

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)
RUNNING, SUCCEEDED = ConditionType.RUNNING, ConditionType.SUCCEEDED
TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE


def cond(kind: ConditionType, status: ConditionStatus, reason: str, at: datetime) -> Condition:
    return Condition(type=kind, status=status, reason=reason, message="", last_transition_time=at)


@pytest.mark.parametrize(
    ("before", "kind", "status", "reason", "expected"),
    [
        ([], RUNNING, TRUE, "StageRunning", [cond(RUNNING, TRUE, "StageRunning", T1)]),
        (  # same status, another reason: the transition time stays
            [cond(RUNNING, FALSE, "Queued", T0)],
            RUNNING,
            FALSE,
            "Retrying",
            [cond(RUNNING, FALSE, "Retrying", T0)],
        ),
        (  # the status changes: the time moves
            [cond(RUNNING, FALSE, "Queued", T0)],
            RUNNING,
            TRUE,
            "StageRunning",
            [cond(RUNNING, TRUE, "StageRunning", T1)],
        ),
        (  # other conditions keep their place
            [cond(SUCCEEDED, FALSE, "InProgress", T0), cond(RUNNING, TRUE, "StageRunning", T0)],
            SUCCEEDED,
            TRUE,
            "Succeeded",
            [cond(SUCCEEDED, TRUE, "Succeeded", T1), cond(RUNNING, TRUE, "StageRunning", T0)],
        ),
    ],
    ids=["new", "same-status", "changed", "order-kept"],
)
def test_set_condition(
    before: list[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    expected: list[Condition],
) -> None:
    assert set_condition(before, kind, status, reason, "", T1) == expected


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({}, {}, {}),
        ({"phase": "Queued"}, {"phase": "Queued"}, {}),
        ({"phase": "Queued"}, {"phase": "Running"}, {"phase": "Running"}),
        (
            {"error": {"code": "X"}, "phase": "Failed"},
            {"phase": "Queued"},
            {"error": None, "phase": "Queued"},
        ),
        (
            {"heartbeat": {"pod": "a", "gpu": "g"}},
            {"heartbeat": {"pod": "b", "gpu": "g"}},
            {"heartbeat": {"pod": "b"}},
        ),
        ({"stages": [{"a": 1}]}, {"stages": [{"a": 2}]}, {"stages": [{"a": 2}]}),  # lists are replaced whole
        ({"heartbeat": {"pod": "a"}}, {"heartbeat": None}, {"heartbeat": None}),
    ],
    ids=["empty", "same", "changed", "removed", "nested", "list", "to-null"],
)
def test_merge_patch(old: dict[str, object], new: dict[str, object], patch: dict[str, object]) -> None:
    assert merge_patch(old, new) == patch
