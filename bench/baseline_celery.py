"""The baseline, the Celery + Redis design of the IndexTTS service API (v1): Redis (Debian's
redis-server, started here on a free loopback port), a Celery worker (threads pool) whose task holds
the global Redis GPU lock while it sleeps the service time (:mod:`bench.celery_app`), and clients
that ``delay()`` and ``get()``.

The same figures as ours: overhead at 1, 10 and 100 clients (the worker's concurrency matching the
clients, as our worker slots do; the lock still lets one task at a time use the "GPU", and the time a
job waits while another holds it is queueing for the engine, not overhead), and the busy fraction of
200 jobs with 4 workers.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.stats import JobTiming, busy_fraction, overhead_figures
from nats_support.embedded_nats import free_port, stop_child

LEVEL_SECONDS = 180.0


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence); yields its URL."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install -y redis-server (make bench does)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", folder]
        command += ["--save", "", "--appendonly", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        try:
            _wait_for_redis(port, process)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_child(process, 10)


def _wait_for_redis(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        with contextlib.suppress(redis.exceptions.ConnectionError):
            if client.ping():
                client.close()
                return
        time.sleep(0.05)
    raise RuntimeError("redis-server did not answer")


@contextlib.contextmanager
def celery_worker(redis_url: str, *, concurrency: int, service_seconds: float) -> Iterator[int]:
    """``celery worker`` (threads pool) as a child process; yields its pid once it answers a task."""
    env = {**os.environ, "BENCH_REDIS_URL": redis_url, "BENCH_SERVICE_SECONDS": str(service_seconds)}
    command = [sys.executable, "-m", "celery", "-A", "bench.celery_app", "worker", "--pool", "threads"]
    command += ["--concurrency", str(concurrency), "--loglevel", "WARNING"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    root = Path(__file__).resolve().parent.parent
    process = subprocess.Popen(  # noqa: S603 (this environment's Python, fixed arguments)
        command, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        app = _client_app(redis_url)
        app.send_task("bench.ping").get(timeout=60)
        app.backend.client.delete("gpu_lock")
        yield process.pid
    finally:
        stop_child(process, 30)


def _client_app(redis_url: str) -> Any:
    from celery import Celery

    app = Celery("celery_baseline_client", broker=redis_url, backend=redis_url)
    # A result collected after redis-server has stopped must not retry for ever.
    app.conf.result_backend_transport_options = {"retry_policy": {"max_retries": 2}}
    return app


def drive(redis_url: str, clients: int, jobs: int) -> list[JobTiming]:
    """``jobs`` tasks from ``clients`` client threads, each ``delay()`` then ``get()``."""
    app = _client_app(redis_url)
    deadline = time.monotonic() + LEVEL_SECONDS

    def one(index: int) -> JobTiming | None:
        if time.monotonic() > deadline:
            return None
        submitted = time.time()
        result = app.send_task(
            "indextts.generate_speech", args=["你好，这是一个测试。", f"/share/bench/{index}.wav"]
        )
        body: dict[str, Any] = result.get(timeout=LEVEL_SECONDS)
        received = time.time()
        result.forget()
        return JobTiming(submitted, body["started"], body["finished"], received)

    with ThreadPoolExecutor(max_workers=clients) as executor:
        return [timing for timing in executor.map(one, range(jobs)) if timing is not None]


def submit_all(redis_url: str, jobs: int) -> list[JobTiming]:
    """``jobs`` tasks sent at once, then every result awaited."""
    app = _client_app(redis_url)
    submitted = time.time()
    results = [
        app.send_task("indextts.generate_speech", args=["你好", f"/share/bench/{index}.wav"])
        for index in range(jobs)
    ]
    # Read each result's record directly: AsyncResult.get() on a result that is already stored waits
    # for its pub/sub message for about a second, which would say nothing about the Celery design.
    ids = [result.id for result in results]
    del results
    deadline = time.monotonic() + LEVEL_SECONDS
    timings = []
    for task_id in ids:
        while (meta := app.backend.get_task_meta(task_id))["status"] not in ("SUCCESS", "FAILURE"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} did not finish within {LEVEL_SECONDS} s")
            time.sleep(0.05)
        body: dict[str, Any] = meta["result"]
        timings.append(JobTiming(submitted, body["started"], body["finished"], time.time()))
    return timings


def measure(
    *,
    service_seconds: float = 0.05,
    jobs: dict[int, int] | None = None,
    levels: Sequence[int] = (1, 10, 100),
    scaling_jobs: int = 200,
    scaling_service_seconds: float = 0.1,
    scaling_workers: int = 4,
    warmup: int = 10,
    max_concurrency: int | None = None,
) -> dict[str, float]:
    """The baseline's figures; ``max_concurrency`` caps the Celery worker's threads (a quick run),
    and levels with the same cap share a worker."""
    jobs = jobs or {1: 100, 10: 300, 100: 600}
    results: dict[str, float] = {}
    groups: dict[int, list[int]] = {}
    for clients in levels:
        groups.setdefault(min(clients, max_concurrency or clients), []).append(clients)
    with redis_server() as url:
        for concurrency, group in groups.items():
            with celery_worker(url, concurrency=concurrency, service_seconds=service_seconds):
                drive(url, min(max(group), warmup), warmup)
                for clients in group:
                    began = time.monotonic()
                    timings = drive(url, clients, jobs[clients])
                    wall = time.monotonic() - began
                    results[f"baseline_throughput_jobs_per_s_c{clients}"] = len(timings) / wall
                    # One "GPU": the global lock lets one task at a time hold it.
                    suffix = f"c{clients}"
                    results.update(overhead_figures(timings, service_seconds, 1, suffix, prefix="baseline_"))
        with celery_worker(url, concurrency=scaling_workers, service_seconds=scaling_service_seconds):
            drive(url, scaling_workers, warmup)
            timings = submit_all(url, scaling_jobs)
        gc.collect()  # results collected after redis-server stops would try to reconnect
        key = f"baseline_busy_fraction_w{scaling_workers}"
        results[key] = busy_fraction(timings, scaling_service_seconds, scaling_workers)
        # What the lock allows at best: one "GPU" busy of the W the workers run on.
        results[f"baseline_busy_fraction_w{scaling_workers}_of_one_gpu"] = busy_fraction(
            timings, scaling_service_seconds, 1
        )
    return results
