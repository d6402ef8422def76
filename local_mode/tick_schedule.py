"""Which records local mode's operator ticks, and when.

Kept up to date from the records watch, so that a tick reads only the records that need one: every
unfinished record (its timeout and heartbeat are checked), every record marked for deletion or
whose handling failed, and a finished record once its time to live has run out. A tick then costs
what the work in hand costs, not one read per record stored.
"""

from __future__ import annotations

from datetime import datetime


class TickSchedule:
    """Record names and when each is next due: None means every tick."""

    def __init__(self) -> None:
        self._due: dict[str, datetime | None] = {}

    def __len__(self) -> int:
        return len(self._due)

    def note(self, name: str, due: datetime | None) -> None:
        self._due[name] = due

    def forget(self, name: str) -> None:
        self._due.pop(name, None)

    def due(self, now: datetime) -> list[str]:
        """The names a tick at ``now`` reads."""
        return [name for name, at in self._due.items() if at is None or at <= now]
