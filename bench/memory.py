"""Resident memory from /proc/<pid>/status (VmRSS now, VmHWM the peak), and a worker alone with
each engine: ``python -m inference_pod`` on an embedded nats-server, a few jobs published to it; and
a worker's cold start, from its process start to the first job it takes (what a pod scaled from
zero adds to the job that woke it, once scheduled and its image pulled)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import nats
from nats.js.api import DeliverPolicy
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from nats_support.embedded_nats import EmbeddedNats, stop_child
from nats_support.jetstream import ensure_jetstream
from tts_api.constants import TaskName
from tts_api.messages import JobMessage, WorkflowRef, encode, make_job_id
from tts_api.nats_names import job_subject
from tts_api.policy import ValidationPolicy
from tts_api.registry import ModelState, decode_entry
from tts_api.request import IndexTTSConfig
from tts_api.speech_models import model_of

WORKER_SECONDS = 180.0


def rss_mb(pid: int) -> dict[str, float]:
    """``rss`` (VmRSS) and ``hwm`` (VmHWM) of a process, in MiB."""
    figures = {"rss": 0.0, "hwm": 0.0}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures["rss" if name == "VmRSS" else "hwm"] = int(value.split()[0]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(pid: int) -> int | None:
    """The first child of a process (local mode's embedded nats-server), if any."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


class RssSampler:
    """Samples a process's VmRSS every ``every`` seconds while the block runs; ``peak_mb`` after."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid = pid
        self.every = every
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                self.peak_mb = max(self.peak_mb, rss_mb(self.pid)["rss"])
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()


def _job(index: int, policy: ValidationPolicy, text: str) -> JobMessage:
    uid = f"bench-memory-{index}"
    config = {
        "text": text,
        "output_path": f"/share/workflows/output/bench/memory-{index}-{uuid.uuid4().hex[:8]}.wav",
    }
    return JobMessage(
        job_id=make_job_id(uid, TaskName.GENERATE_SPEECH, 1),
        workflow=WorkflowRef(uid=uid, name=uid, namespace="bench"),
        task=TaskName.GENERATE_SPEECH,
        attempt=1,
        config=IndexTTSConfig.model_validate(config, context={"policy": policy}),
    )


async def _ready_and_run(url: str, policy: ValidationPolicy, model: str, jobs: int, text: str) -> None:
    """Wait for the worker's registry entry to say ready, publish ``jobs`` jobs, wait for them."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        bucket = await ensure_jetstream(js)
        deadline = time.monotonic() + WORKER_SECONDS
        while not await _a_worker_is_ready(bucket):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker was ready within {WORKER_SECONDS} s")
            await asyncio.sleep(0.2)
        completed = await js.subscribe("tts.events.*.completed")
        for index in range(jobs):
            job = _job(index, policy, text)
            await js.publish(job_subject(model, job.task), encode(job), headers={"Nats-Msg-Id": job.job_id})
        for _ in range(jobs):
            await completed.next_msg(timeout=WORKER_SECONDS)
    finally:
        await client.close()


async def _a_worker_is_ready(bucket: KeyValue) -> bool:
    try:
        keys = await bucket.keys()
    except NoKeysError:
        return False
    for key in keys:
        entry = await bucket.get(key)
        if entry.value and decode_entry(entry.value).model_state is ModelState.READY:
            return True
    return False


def worker_cold_start(data_dir: Path, *, engine: str, env: dict[str, str] | None = None) -> float:
    """Seconds from ``python -m inference_pod`` starting to its ``started`` event of a job that was
    waiting for it: the interpreter, the imports, the model load, the consumer, the fetch."""
    share = data_dir / "share"
    share.mkdir(parents=True, exist_ok=True)
    policy = ValidationPolicy(shared_dir=share, shared_prefix="/share")
    with EmbeddedNats(data_dir / "nats") as server:
        started = asyncio.run(_queue_one(server.url, policy, model_of(engine)))
        began = time.monotonic()
        with _worker(server.url, share, engine, env or {}):
            asyncio.run(_wait_for_started(server.url, started))
            return time.monotonic() - began


async def _queue_one(url: str, policy: ValidationPolicy, model: str) -> str:
    """Queue one job for ``model`` with no worker up; the subject its ``started`` event comes on."""
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        await ensure_jetstream(js)
        job = _job(0, policy, "你好，这是一个测试。")
        await js.publish(job_subject(model, job.task), encode(job), headers={"Nats-Msg-Id": job.job_id})
        return f"tts.events.{job.workflow.uid}.started"
    finally:
        await client.close()


async def _wait_for_started(url: str, subject: str) -> None:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        started = await js.subscribe(subject, deliver_policy=DeliverPolicy.ALL)
        await started.next_msg(timeout=WORKER_SECONDS)
    finally:
        await client.close()


def worker_rss(
    data_dir: Path, *, engine: str, env: dict[str, str] | None = None, jobs: int = 3, text: str = ""
) -> dict[str, float]:
    """A worker process alone with ``engine``: RSS once loaded and idle after ``jobs`` jobs, and its
    peak (VmHWM), in MiB."""
    share = data_dir / "share"
    share.mkdir(parents=True, exist_ok=True)
    policy = ValidationPolicy(shared_dir=share, shared_prefix="/share")
    with EmbeddedNats(data_dir / "nats") as server, _worker(server.url, share, engine, env or {}) as worker:
        asyncio.run(
            _ready_and_run(
                server.url, policy, model_of(engine), jobs, text or "你好，这是一个测试。Hello there."
            )
        )
        figures = rss_mb(worker.pid)
    return {"rss": figures["rss"], "hwm": figures["hwm"]}


@contextlib.contextmanager
def _worker(url: str, share: Path, engine: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TTS_")}
    environment.update(env)
    environment.update(
        {
            "TTS_WORKER_NATS_URL": url,
            "TTS_WORKER_ENGINE": engine,
            "TTS_WORKER_HTTP_PORT": "0",
            "TTS_SHARED_DIR": str(share),
            "TTS_SHARED_PREFIX": "/share",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "inference_pod", "--log-level", "WARNING"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        stop_child(process, 30)
