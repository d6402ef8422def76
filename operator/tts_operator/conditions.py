"""Kubernetes-style conditions: set one, moving ``lastTransitionTime`` only when its status changes."""

from __future__ import annotations

from datetime import datetime

from tts_api.constants import ConditionStatus, ConditionType
from tts_api.resource import Condition


def set_condition(
    conditions: list[Condition],
    kind: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """A new list with ``kind`` set; the others kept in their order (new kinds appended).

    ``lastTransitionTime`` is the time the status last changed, as Kubernetes defines it: setting
    the same status again with another reason or message keeps the old time.
    """
    found = next((c for c in conditions if c.type == kind), None)
    since = found.last_transition_time if found is not None and found.status == status else now
    updated = Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=observed_generation,
    )
    if found is None:
        return [*conditions, updated]
    return [updated if c.type == kind else c for c in conditions]
