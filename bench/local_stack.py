"""`indextts-k8s local` as a child process on a free loopback port, and how a client drives it.

Local mode is one process: the gateway, the operator's runner and the worker slots share it (the
embedded nats-server is its child). Jobs go through the workflow API's synchronous ``POST /v1/workflows`` or
its asynchronous form; each job's engine start and end come from the status's ``stages[0]``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from nats_support.embedded_nats import free_port

COMMAND = str(Path(sys.executable).parent / "indextts-k8s")
TEXT = "你好，这是一个测试。"  # one segment: the synthetic engine sleeps its service time in one go


@dataclass
class LocalStack:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def request_body(index: int) -> dict[str, Any]:
    return {
        "video_path": "/app/videos/bench.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": TEXT,
                "output_path": f"/share/workflows/output/bench/{index}-{uuid.uuid4().hex[:8]}.wav",
            },
        },
    }


@contextlib.contextmanager
def running_stack(
    data_dir: Path, *, workers: int, service_seconds: float, engine: str = "synthetic"
) -> Iterator[LocalStack]:
    """The stack with ``workers`` slots of the synthetic engine, serving, every slot registered."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "stack.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("TTS_")}
    env["TTS_WORKER_SYNTHETIC_DELAY_SECONDS"] = str(service_seconds)
    command = [COMMAND, "local", "--data-dir", str(data_dir), "--port", str(port)]
    command += ["--engine", engine, "--workers", str(workers), "--log-level", "WARNING"]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    stack = LocalStack(f"http://127.0.0.1:{port}", process, log)
    try:
        _wait_until_ready(stack, workers)
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(stack: LocalStack, workers: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"the local stack exited:\n{stack.log.read_text(errors='replace')[-4000:]}")
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            health = httpx.get(f"{stack.url}/api/v1/monitoring/gpu-lock/health", timeout=2).json()
            if int(health["total_locks"]) >= workers:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the local stack did not get {workers} worker(s) ready within {timeout} s")


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


class Clients:
    """One HTTP connection per client thread, as separate clients would have."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()

    def get(self) -> httpx.Client:
        client: httpx.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(base_url=self._url, timeout=60)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        for client in self._all:
            client.close()


def stage_times(client: httpx.Client, workflow_id: str) -> tuple[float, float]:
    """The engine's start and end for the workflow's one stage, from its status."""
    stage = client.get(f"/v1/workflows/status/{workflow_id}").json()["stages"][0]
    return epoch(stage["started_at"]), epoch(stage["finished_at"])


def wait_finished(client: httpx.Client, workflow_id: str, deadline: float) -> None:
    """Poll the status until the workflow has finished (or the deadline passes)."""
    while time.monotonic() < deadline:
        status = client.get(f"/v1/workflows/status/{workflow_id}").json()
        if status["status"] in {"succeeded", "failed", "cancelled"}:
            return
        time.sleep(0.1)
    raise TimeoutError(f"workflow {workflow_id} did not finish in time")
