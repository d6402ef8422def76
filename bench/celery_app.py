"""The baseline's worker (the Celery + Redis design of the IndexTTS service API (v1)), reduced to
its control plane: a Celery task on Redis that takes the global GPU lock (``SET gpu_lock TOKEN NX
EX``, polled with exponential backoff), sleeps the service time in place of IndexTTS2, releases the
lock and returns the workflow API's result fields plus its timings.

The Celery worker imports this module (``celery -A bench.celery_app worker``); its settings come from
the environment the bench gives the worker: ``BENCH_REDIS_URL`` and ``BENCH_SERVICE_SECONDS``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SERVICE_SECONDS = float(os.environ.get("BENCH_SERVICE_SECONDS", "0.05"))
LOCK_KEY = "gpu_lock"
LOCK_EXPIRE_SECONDS = 1800  # the lock outlives a crashed holder this long
# Poll with backoff: the first retry after 50 ms, doubling, at most 1 s apart.
POLL_FIRST_SECONDS = 0.05
POLL_MAX_SECONDS = 1.0
TASK_NAME = "indextts.generate_speech"

app = Celery("celery_baseline", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_locks = redis.Redis.from_url(REDIS_URL)
# Releases the lock only if this task still holds it (it may have expired and been taken).
_release = _locks.register_script(
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
)


def acquire_gpu_lock(token: str) -> None:
    delay = POLL_FIRST_SECONDS
    while not _locks.set(LOCK_KEY, token, nx=True, ex=LOCK_EXPIRE_SECONDS):
        time.sleep(delay)
        delay = min(2 * delay, POLL_MAX_SECONDS)


@app.task(name=TASK_NAME)
def generate_speech(text: str, output_path: str) -> dict[str, Any]:
    received = time.time()
    token = uuid.uuid4().hex
    acquire_gpu_lock(token)
    started = time.time()
    try:
        time.sleep(SERVICE_SECONDS)  # IndexTTS2.infer
    finally:
        finished = time.time()
        _release(keys=[LOCK_KEY], args=[token])
    return {
        "status": "success",
        "output_path": output_path,
        "text_length": len(text),
        "processing_time": finished - started,
        "received": received,
        "started": started,
        "finished": finished,
    }


@app.task(name="bench.ping")
def ping() -> str:
    return "pong"
