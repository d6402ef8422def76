"""The tally kept change by change equals the tally of the workflows as they are now."""

from __future__ import annotations

import random

import pytest

from gateway.live_tally import LiveTally
from gateway.monitoring import Tally
from tests.gateway.test_monitoring import record
from tts_api.constants import Phase, StageState
from tts_api.resource import TTSWorkflow

STATES = [StageState.PENDING, StageState.QUEUED, StageState.RUNNING, StageState.SUCCEEDED, StageState.FAILED]


def random_workflow(chance: random.Random, name: str) -> TTSWorkflow:
    stages = [
        (chance.choice(STATES), chance.randint(0, 3), chance.choice([None, round(chance.uniform(0, 9), 2)]))
        for _ in range(chance.randint(0, 3))
    ]
    return record(name, *stages, beat=chance.random() < 0.5, phase=chance.choice(list(Phase)))


@pytest.mark.parametrize("draw", range(5))
def test_the_kept_tally_is_the_tally_of_what_is_there_now(draw: int) -> None:
    chance = random.Random(draw)  # noqa: S311  # a reproducible sequence, not a secret
    live, now = LiveTally(), dict[str, TTSWorkflow]()
    for _ in range(400):
        name = f"wf-{chance.randint(0, 30)}"
        if chance.random() < 0.2:
            live.forget(name)
            now.pop(name, None)
        else:
            now[name] = random_workflow(chance, name)
            live.note(name, now[name])
    kept, counted = live.tally(), Tally.of(now.values())
    assert len(live) == len(now)
    assert kept.processing_seconds == pytest.approx(counted.processing_seconds)
    kept.processing_seconds = counted.processing_seconds
    assert sorted(kept.active, key=lambda t: t.workflow_id) == sorted(
        counted.active, key=lambda t: t.workflow_id
    )
    kept.active = counted.active
    assert kept == counted


def test_a_tally_read_is_a_copy() -> None:
    live = LiveTally()
    live.note("a", record("a", (StageState.RUNNING, 1, None)))
    taken = live.tally()
    live.forget("a")
    assert (taken.dispatched, len(taken.active)) == (1, 1)
    assert (live.tally().dispatched, live.tally().active) == (0, [])
