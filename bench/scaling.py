"""Throughput scaling of local mode: 200 jobs of fixed service time submitted at once (async POST) to
1, 2 and 4 worker slots; the busy fraction is the jobs' service time per worker over the time from
the first job's start to the last job's end (gaps between jobs show here)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.local_stack import Clients, LocalStack, request_body, running_stack, stage_times, wait_finished
from bench.overhead import drive
from bench.stats import JobTiming, busy_fraction

SCALING_SECONDS = 300.0


def submit_all(stack: LocalStack, jobs: int, submitters: int = 8) -> list[JobTiming]:
    """``jobs`` asynchronous requests, then each awaited; the engine's start and end of each."""
    pool = Clients(stack.url)

    def submit(index: int) -> tuple[str, float]:
        submitted = time.time()
        response = pool.get().post("/v1/workflows", params={"async": "true"}, json=request_body(index))
        if response.status_code != 202:
            raise RuntimeError(f"job {index} was not accepted: HTTP {response.status_code} {response.text}")
        return str(response.json()["workflow_id"]), submitted

    try:
        with ThreadPoolExecutor(max_workers=submitters) as executor:
            accepted = list(executor.map(submit, range(jobs)))
        client = pool.get()
        deadline = time.monotonic() + SCALING_SECONDS
        timings = []
        for workflow_id, submitted in accepted:
            wait_finished(client, workflow_id, deadline)
            started, finished = stage_times(client, workflow_id)
            timings.append(JobTiming(submitted, started, finished, time.time()))
        return timings
    finally:
        pool.close()


def measure(
    data_dir: Path,
    *,
    service_seconds: float = 0.1,
    jobs: int = 200,
    worker_counts: Sequence[int] = (1, 2, 4),
    long_service_seconds: float | None = 1.0,
    long_jobs: int = 40,
) -> dict[str, float]:
    """Busy fractions at 1, 2 and 4 slots; with ``long_service_seconds``, the largest again with a
    service time nearer a real synthesis's (key ``busy_fraction_wN_long``): the gaps between jobs are
    the same milliseconds, a smaller share of a longer job."""
    results: dict[str, float] = {"scaling_service_ms": 1000 * service_seconds, "scaling_jobs": jobs}
    runs = [(workers, service_seconds, jobs, "") for workers in worker_counts]
    if long_service_seconds is not None:
        runs.append((max(worker_counts), long_service_seconds, long_jobs, "_long"))
        results["scaling_long_service_ms"] = 1000 * long_service_seconds
    for workers, service, count, suffix in runs:
        folder = data_dir / f"w{workers}{suffix}"
        with running_stack(folder, workers=workers, service_seconds=service) as stack:
            drive(stack, workers, 2 * workers, first_index=1_000_000)  # warm every slot
            timings = submit_all(stack, count)
        results[f"busy_fraction_w{workers}{suffix}"] = busy_fraction(timings, service, workers)
        results[f"gap_between_jobs_ms_w{workers}{suffix}"] = _gaps_ms(timings, workers)
        in_worker = sum(t.finished - t.started for t in timings) / len(timings) - service
        results[f"in_worker_extra_ms_w{workers}{suffix}"] = 1000 * in_worker
    return results


def _gaps_ms(timings: list[JobTiming], workers: int) -> float:
    """The mean idle time of a slot between one job's end (its ``completed`` event) and the next
    one's start (its ``started`` event): (span x workers - time within jobs) / jobs."""
    span = max(t.finished for t in timings) - min(t.started for t in timings)
    work = sum(t.finished - t.started for t in timings)
    return 1000 * (span * workers - work) / len(timings)
