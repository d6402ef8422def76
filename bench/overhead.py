"""Control-plane overhead of local mode: the workflow API's synchronous POST, a synthetic engine of fixed
service time, 1, 10 and 100 concurrent clients.

Each level runs on a fresh stack with as many worker slots as clients, so no job ever queues for an
engine; the rule of :func:`bench.stats.overhead_figures` (latency - service - time queued for a busy
engine) then leaves the control plane alone, and the baseline gets the same rule. The stack's RSS is
sampled idle and under the largest level (local mode is one process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.local_stack import LocalStack, request_body, running_stack, stage_times
from bench.memory import RssSampler, child_pid, cpu_seconds, rss_mb
from bench.stats import JobTiming, overhead_figures

LEVELS = (1, 10, 100)
# Time bound of one level: a stuck stack ends the run instead of hanging it.
LEVEL_SECONDS = 180.0


def drive(
    stack: LocalStack, clients: int, jobs: int, first_index: int = 0, stagger_seconds: float = 0.0
) -> list[JobTiming]:
    """``jobs`` synchronous requests from ``clients`` concurrent clients; each job's four times.

    The clients are asyncio tasks on one HTTP connection each: a load generator as light as can be,
    since on 2 cores every millisecond of client CPU is taken from the stack under test. Client ``i``
    sends its first request ``i x stagger_seconds / clients`` after the first one, so that clients
    of a fixed service time do not all arrive at the same instant, round after round."""
    answers = asyncio.run(_post_all(stack.url, clients, jobs, first_index, stagger_seconds))
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        timings = []
        for workflow_id, submitted, received in answers:
            started, finished = stage_times(client, workflow_id)
            timings.append(JobTiming(submitted, started, finished, received))
    return timings


async def _post_all(
    url: str, clients: int, jobs: int, first_index: int, stagger_seconds: float
) -> list[tuple[str, float, float]]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.monotonic() + LEVEL_SECONDS
    pending = iter(range(jobs))
    answers: list[tuple[str, float, float]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:

        async def client(number: int) -> None:
            await asyncio.sleep(number * stagger_seconds / clients)
            for index in pending:
                if time.monotonic() > deadline:
                    return
                submitted = time.time()
                response = await http.post("/v1/workflows", json=request_body(first_index + index))
                received = time.time()
                body = response.json()
                if response.status_code != 200 or body.get("status") != "success":
                    raise RuntimeError(f"job {index} did not succeed: HTTP {response.status_code} {body}")
                answers.append((str(body["workflow_id"]), submitted, received))

        await asyncio.gather(*(client(number) for number in range(clients)))
    return answers


@dataclass
class Load:
    """CPU seconds of the stack, its nats-server and this client process, around a run."""

    stack_pid: int
    nats_pid: int | None
    began: tuple[float, float, float] = (0.0, 0.0, 0.0)
    wall: float = 0.0

    def _now(self) -> tuple[float, float, float]:
        nats = cpu_seconds(self.nats_pid) if self.nats_pid else 0.0
        return cpu_seconds(self.stack_pid), nats, time.process_time()

    def start(self) -> None:
        self.began, self.wall = self._now(), time.monotonic()

    def per_job(self, jobs: int, suffix: str) -> dict[str, float]:
        ended, wall = self._now(), time.monotonic() - self.wall
        stack, nats, client = (1000 * (e - b) / max(jobs, 1) for e, b in zip(ended, self.began, strict=True))
        return {
            f"throughput_jobs_per_s_{suffix}": jobs / wall,
            f"stack_cpu_ms_per_job_{suffix}": stack,
            f"nats_cpu_ms_per_job_{suffix}": nats,
            f"client_cpu_ms_per_job_{suffix}": client,
        }


def _level(
    stack: LocalStack, clients: int, jobs: int, results: dict[str, float], *, sample_memory: bool
) -> list[JobTiming]:
    """One level's jobs; its load figures (and, if asked, the stack's memory) go into ``results``."""
    load = Load(stack.pid, child_pid(stack.pid))
    if sample_memory:
        time.sleep(1.0)
        results["gateway_rss_mb_idle"] = rss_mb(stack.pid)["rss"]
        load.start()
        with RssSampler(stack.pid) as sampler:
            timings = drive(stack, clients, jobs)
        results["gateway_rss_mb_loaded"] = sampler.peak_mb
        results["gateway_hwm_mb"] = rss_mb(stack.pid)["hwm"]
    else:
        load.start()
        timings = drive(stack, clients, jobs)
    results.update(load.per_job(len(timings), f"c{clients}"))
    return timings


def measure(
    data_dir: Path,
    *,
    service_seconds: float = 0.05,
    jobs: dict[int, int] | None = None,
    levels: Sequence[int] = LEVELS,
    warmup: int = 20,
    max_workers: int | None = None,
    long_service_seconds: float | None = 4.0,
    long_jobs: int = 300,
) -> dict[str, float]:
    """The overhead figures per level, plus the stack's RSS idle and under the largest level.

    ``max_workers`` caps the worker slots (a quick run); jobs then queue for a busy engine, and that
    queueing is taken out of the overhead by the same rule as the baseline's.

    With a 50 ms service time, 100 closed-loop clients offer 2000 jobs/s, far beyond what 2 shared
    cores can carry, so the c100 level measures a saturated control plane (its throughput is
    reported). ``long_service_seconds`` adds the largest level again with a service time of the order
    of a real synthesis, where the same clients offer a load within capacity (keys ``..._c100_long``).
    """
    jobs = jobs or {1: 100, 10: 300, 100: 600}
    results: dict[str, float] = {"overhead_service_ms": 1000 * service_seconds}
    # Levels with the same number of slots share a stack (only when max_workers caps them).
    groups: dict[int, list[int]] = {}
    for clients in levels:
        groups.setdefault(min(clients, max_workers or clients), []).append(clients)
    for workers, group in groups.items():
        with running_stack(
            data_dir / f"w{workers}", workers=workers, service_seconds=service_seconds
        ) as stack:
            drive(stack, min(max(group), warmup), warmup, first_index=1_000_000)
            for clients in group:
                largest = clients == max(levels)
                timings = _level(stack, clients, jobs[clients], results, sample_memory=largest)
                results.update(overhead_figures(timings, service_seconds, workers, f"c{clients}"))
                results[f"overhead_jobs_c{clients}"] = len(timings)
    if long_service_seconds is not None:
        clients = max(levels)
        workers = min(clients, max_workers or clients)
        with running_stack(
            data_dir / f"c{clients}-long", workers=workers, service_seconds=long_service_seconds
        ) as stack:
            drive(stack, min(clients, warmup), warmup, first_index=1_000_000)
            load = Load(stack.pid, child_pid(stack.pid))
            load.start()
            timings = drive(stack, clients, long_jobs, stagger_seconds=long_service_seconds)
            results.update(load.per_job(len(timings), f"c{clients}_long"))
        suffix = f"c{clients}_long"
        results.update(overhead_figures(timings, long_service_seconds, workers, suffix))
        results["overhead_long_service_ms"] = 1000 * long_service_seconds
    return results
