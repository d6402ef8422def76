"""The monitoring tally of every workflow, kept current change by change.

A watch of the workflows (local mode's records bucket, or the API server's TTSWorkflows) hands each
change to :class:`LiveTally`, which keeps each workflow's share (a few counters and its active
tasks) and moves the totals by the difference. Reading the totals then costs the same however many
workflows are kept: the statistics, heartbeat and GPU-lock views read no record at all.
"""

from __future__ import annotations

from gateway.monitoring import Tally
from tts_api.resource import TTSWorkflow


class LiveTally:
    def __init__(self) -> None:
        self._shares: dict[str, Tally] = {}
        self._totals = Tally()
        self._active: dict[str, None] = {}  # the names with active tasks, in the order first seen

    def __len__(self) -> int:
        return len(self._shares)

    def note(self, name: str, workflow: TTSWorkflow) -> None:
        """``workflow`` is now as given (created, or changed)."""
        self.forget(name)
        share = Tally.of([workflow])
        self._shares[name] = share
        self._totals.move(share, 1)
        if share.active:
            self._active[name] = None

    def forget(self, name: str) -> None:
        """The workflow ``name`` is gone."""
        share = self._shares.pop(name, None)
        if share is not None:
            self._totals.move(share, -1)
            self._active.pop(name, None)

    def clear(self) -> None:
        self._shares.clear()
        self._active.clear()
        self._totals = Tally()

    def tally(self) -> Tally:
        """The totals now, with every active task (a copy: later changes do not touch it)."""
        found = Tally()
        found.move(self._totals, 1)
        found.active = [task for name in self._active for task in self._shares[name].active]
        return found
