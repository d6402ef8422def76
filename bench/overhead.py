"""Control-plane overhead of local mode: the seed's synchronous POST, a synthetic engine of fixed
service time, 1, 10 and 100 concurrent clients.

Each level runs on a fresh stack with as many worker slots as clients, so no job ever queues for an
engine; the rule of :func:`bench.stats.overhead_figures` (latency - service - time queued for a busy
engine) then leaves the control plane alone, and the baseline gets the same rule. The stack's RSS is
sampled idle and under the largest level (local mode is one process).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.local_stack import Clients, LocalStack, request_body, running_stack, stage_times
from bench.memory import RssSampler, rss_mb
from bench.stats import JobTiming, overhead_figures

LEVELS = (1, 10, 100)
# Time bound of one level: a stuck stack ends the run instead of hanging it.
LEVEL_SECONDS = 180.0


def drive(stack: LocalStack, clients: int, jobs: int, first_index: int = 0) -> list[JobTiming]:
    """``jobs`` synchronous requests from ``clients`` concurrent clients; each job's four times."""
    pool = Clients(stack.url)
    deadline = time.monotonic() + LEVEL_SECONDS

    def one(index: int) -> tuple[str, float, float] | None:
        if time.monotonic() > deadline:
            return None
        client = pool.get()
        submitted = time.time()
        response = client.post("/v1/workflows", json=request_body(first_index + index))
        received = time.time()
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"job {index} did not succeed: HTTP {response.status_code} {body}")
        return str(body["workflow_id"]), submitted, received

    try:
        with ThreadPoolExecutor(max_workers=clients) as executor:
            answers = [answer for answer in executor.map(one, range(jobs)) if answer is not None]
        timings = []
        client = pool.get()
        for workflow_id, submitted, received in answers:
            started, finished = stage_times(client, workflow_id)
            timings.append(JobTiming(submitted, started, finished, received))
        return timings
    finally:
        pool.close()


def measure(
    data_dir: Path,
    *,
    service_seconds: float = 0.05,
    jobs: dict[int, int] | None = None,
    levels: Sequence[int] = LEVELS,
    warmup: int = 20,
    max_workers: int | None = None,
) -> dict[str, float]:
    """The overhead figures per level, plus the stack's RSS idle and under the largest level.

    ``max_workers`` caps the worker slots (a quick run); jobs then queue for a busy engine, and that
    queueing is taken out of the overhead by the same rule as the baseline's."""
    jobs = jobs or {1: 100, 10: 300, 100: 600}
    results: dict[str, float] = {"overhead_service_ms": 1000 * service_seconds}
    for clients in levels:
        workers = min(clients, max_workers or clients)
        with running_stack(
            data_dir / f"c{clients}", workers=workers, service_seconds=service_seconds
        ) as stack:
            drive(stack, min(clients, warmup), warmup, first_index=1_000_000)
            if clients == max(levels):
                time.sleep(1.0)
                results["gateway_rss_mb_idle"] = rss_mb(stack.pid)["rss"]
                with RssSampler(stack.pid) as sampler:
                    timings = drive(stack, clients, jobs[clients])
                results["gateway_rss_mb_loaded"] = sampler.peak_mb
                results["gateway_hwm_mb"] = rss_mb(stack.pid)["hwm"]
            else:
                timings = drive(stack, clients, jobs[clients])
        results.update(overhead_figures(timings, service_seconds, workers, f"c{clients}"))
        results[f"overhead_jobs_c{clients}"] = len(timings)
    return results
