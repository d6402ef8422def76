"""Stopping a task whose first cancel is swallowed, as nats-py swallows one in its flush."""

from __future__ import annotations

import asyncio
import contextlib

from nats_support.tasks import cancel_and_wait


async def test_a_loop_that_swallows_the_first_cancel_is_still_stopped() -> None:
    swallowed = 0

    async def flush() -> None:
        nonlocal swallowed
        with contextlib.suppress(asyncio.CancelledError):  # what nats-py's flush does
            await asyncio.sleep(0.01)
            return
        swallowed += 1

    async def loop() -> None:
        while True:
            if not swallowed:
                await flush()
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), timeout=2)
    assert task.cancelled()
    assert swallowed == 1  # the first cancel was lost; a second one ended the loop


async def test_a_task_that_ended_with_an_error_is_waited_for_quietly() -> None:
    async def broken() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert isinstance(task.exception(), RuntimeError)
