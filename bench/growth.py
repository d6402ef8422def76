"""Whether local mode's memory and its statistics endpoint stay bounded as records pile up.

One stack keeps every workflow it ran (the default time to live is longer than the run). Rounds of
``clients`` concurrent synchronous requests follow each other; after each round the stack's RSS (the
one Python process; the embedded nats-server apart) and the time ``GET
/api/v1/monitoring/statistics`` takes over all records so far are read, then once more after an idle
pause. Bounded means: RSS levels off after the first round while the records keep growing, and the
statistics time grows with the records far slower than one read per record would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import httpx

from bench.local_stack import LocalStack, request_body, running_stack
from bench.memory import child_pid, rss_mb


async def _round(url: str, clients: int, seconds: float, first_index: int) -> int:
    """Synchronous requests from ``clients`` clients for ``seconds``; how many succeeded."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    deadline = time.monotonic() + seconds
    succeeded = 0
    counter = itertools.count(first_index)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client() -> None:
            nonlocal succeeded
            while time.monotonic() < deadline:
                response = await http.post("/v1/workflows", json=request_body(next(counter)))
                if response.status_code == 200 and response.json().get("status") == "success":
                    succeeded += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return succeeded


def _statistics_ms(stack: LocalStack, repeats: int = 3) -> tuple[float, int]:
    """The best of ``repeats`` statistics calls, in ms, and the tasks it counted."""
    best, total = float("inf"), 0
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        for _ in range(repeats):
            began = time.perf_counter()
            body = client.get("/api/v1/monitoring/statistics").json()
            best = min(best, (time.perf_counter() - began) * 1000)
            total = int(body["system"]["total_tasks"])
    return best, total


def measure(
    work_dir: Path,
    *,
    rounds: int = 3,
    round_seconds: float = 30.0,
    clients: int = 100,
    workers: int = 4,
    service_seconds: float = 0.05,
    idle_seconds: float = 10.0,
) -> dict[str, float]:
    figures: dict[str, float] = {}
    with running_stack(work_dir, workers=workers, service_seconds=service_seconds) as stack:
        figures["growth_rss_mb_start"] = rss_mb(stack.pid)["rss"]
        done = 0
        for number in range(1, rounds + 1):
            done += asyncio.run(_round(stack.url, clients, round_seconds, first_index=done))
            figures[f"growth_rss_mb_round{number}"] = rss_mb(stack.pid)["rss"]
            figures[f"growth_records_round{number}"] = done
            figures[f"growth_statistics_ms_round{number}"], counted = _statistics_ms(stack)
            figures[f"growth_statistics_tasks_round{number}"] = counted
        time.sleep(idle_seconds)
        figures["growth_rss_mb_idle"] = rss_mb(stack.pid)["rss"]
        nats = child_pid(stack.pid)
        if nats is not None:
            figures["growth_nats_rss_mb_idle"] = rss_mb(nats)["rss"]
    return figures
