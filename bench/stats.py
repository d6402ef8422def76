"""Per-job timings and the figures made from them: percentiles, overhead, busy fraction.

Every time is epoch seconds from ``time.time()`` or a worker's UTC timestamp: all on one machine,
one clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class JobTiming:
    """One job as the client and the engine saw it."""

    submitted: float  # the client sends the request
    started: float  # the engine starts (worker's `started` event; the baseline's lock acquired)
    finished: float  # the engine is done (worker's `completed` event; the baseline's lock released)
    received: float  # the client holds the result


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def engine_wait(jobs: Sequence[JobTiming], capacity: int) -> list[float]:
    """For each job, how long, between its submission and its start, every engine slot was busy with
    other jobs: queueing for the engine, which is not control-plane overhead."""
    waits = []
    for index, job in enumerate(jobs):
        # Busy intervals of the other jobs, clipped to this job's wait.
        points: list[tuple[float, int]] = []
        for other_index, other in enumerate(jobs):
            if other_index == index:
                continue
            begin, end = max(other.started, job.submitted), min(other.finished, job.started)
            if begin < end:
                points += [(begin, 1), (end, -1)]
        points.sort()
        busy, waited, since = 0, 0.0, 0.0
        for at, change in points:
            if busy >= capacity:
                waited += at - since
            busy += change
            since = at
        waits.append(waited)
    return waits


def overhead_figures(
    jobs: Sequence[JobTiming], service_seconds: float, capacity: int, suffix: str, prefix: str = ""
) -> dict[str, float]:
    """Overhead per job = client latency - service time - time queued for a busy engine; split into
    submit -> start (less that queueing) and engine done -> client holds the result. Milliseconds."""
    waits = engine_wait(jobs, capacity)
    total = [
        1000 * (job.received - job.submitted - service_seconds - wait)
        for job, wait in zip(jobs, waits, strict=True)
    ]
    to_start = [1000 * (job.started - job.submitted - wait) for job, wait in zip(jobs, waits, strict=True)]
    to_client = [1000 * (job.received - job.finished) for job in jobs]
    latency = [1000 * (job.received - job.submitted) for job in jobs]
    figures = {
        f"{prefix}overhead_p50_ms_{suffix}": percentile(total, 50),
        f"{prefix}overhead_p99_ms_{suffix}": percentile(total, 99),
        f"{prefix}submit_to_start_p50_ms_{suffix}": percentile(to_start, 50),
        f"{prefix}submit_to_start_p99_ms_{suffix}": percentile(to_start, 99),
        f"{prefix}done_to_client_p50_ms_{suffix}": percentile(to_client, 50),
        f"{prefix}done_to_client_p99_ms_{suffix}": percentile(to_client, 99),
        f"{prefix}latency_p50_ms_{suffix}": percentile(latency, 50),
        f"{prefix}latency_p99_ms_{suffix}": percentile(latency, 99),
    }
    return figures


def busy_fraction(jobs: Sequence[JobTiming], service_seconds: float, workers: int) -> float:
    """(jobs x service time / workers) over the time from the first start to the last end: the
    fraction of time the "GPUs" are busy while work is queued."""
    if not jobs:
        return math.nan
    span = max(job.finished for job in jobs) - min(job.started for job in jobs)
    return (len(jobs) * service_seconds / workers) / span if span > 0 else math.nan
