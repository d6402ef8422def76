"""Stopping a task that talks to NATS.

nats-py swallows a ``CancelledError`` in places (its flush of pending writes, run by every publish,
unsubscribe and request): a task cancelled there goes on as if nothing had happened, and a loop then
outlives the cancel that should have ended it. :func:`cancel_and_wait` cancels again until the task
has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

RECANCEL_SECONDS = 0.2


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and return once it has ended (its outcome, an error included, is dropped)."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_SECONDS)
    if not task.cancelled():
        task.exception()  # retrieved: asyncio logs no "exception was never retrieved"
