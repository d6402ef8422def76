"""The local stack on a small disk that fills up: the real `indextts-k8s local` command with its data
directory (JetStream's store and the shared folder) on a tmpfs of its own, filled by a file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.local.stack import start_stack
from tests.local.test_local_nats_faults import FAST_WORKER, assert_unavailable, speech
from tests.tmpfs import mounted_tmpfs

DISK_MB = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "disk", f"{DISK_MB}m") as disk:
        yield disk


def fill(disk: Path) -> Path:
    """A file as large as the disk has room for."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1024 * 1024, 4096, 1):  # down to the last byte
            with contextlib.suppress(OSError):
                while True:
                    os.write(descriptor, b"\0" * size)
    finally:
        os.close(descriptor)
    return filler


def until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_a_full_disk_answers_503_until_space_returns_then_the_queued_work_finishes(small_disk: Path) -> None:
    # A job lasts long enough to be queued behind another when the disk fills; its log is elsewhere.
    env = {**FAST_WORKER, "TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "1"}
    stack = start_stack(small_disk, "--engine", "synthetic", env=env, log=small_disk.parent / "stack.log")
    try:
        with stack.client() as client:
            queued = [
                client.post(
                    "/v1/workflows",
                    params={"async": "1"},
                    json=speech(f"queued {index}", f"/share/workflows/output/q{index}.wav"),
                ).json()["workflow_id"]
                for index in range(8)
            ]
            filler = fill(small_disk)

            answers: list[httpx.Response] = []

            def refused_as_full() -> bool:
                response = client.post(
                    "/v1/workflows",
                    params={"async": "1"},
                    json=speech("while full", "/share/workflows/output/full.wav"),
                )
                answers.append(response)
                if response.status_code == 202:
                    queued.append(response.json()["workflow_id"])
                return response.status_code == 503 and "full" in response.json()["error"]

            until(refused_as_full, "the full disk was never reported")
            for response in answers:
                assert response.status_code in (202, 503), response.text
                if response.status_code == 503:
                    assert_unavailable(response)
            message = answers[-1].json()["error"]
            assert str(small_disk / "nats") in message
            assert "free space" in message
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert "full" in ready.json()["reason"]

            until(lambda: "stopping nats-server until the disk has space" in stack.log_text(), "not held")
            assert (
                client.post("/v1/workflows", json=speech("held", "/share/workflows/output/h.wav")).status_code
                == 503
            )
            filler.unlink()
            until(lambda: client.get("/readyz").status_code == 200, "the stack did not come back")
            after = client.post(
                "/v1/workflows", params={"async": "1"}, json=speech("after", "/share/workflows/output/a.wav")
            )
            assert after.status_code == 202, after.text
            queued.append(after.json()["workflow_id"])

            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                statuses = {wf: client.get(f"/v1/workflows/status/{wf}").json() for wf in queued}
                if all(s["status"] in {"succeeded", "failed", "cancelled"} for s in statuses.values()):
                    break
                time.sleep(0.5)
        # The job in the worker's hands when the disk filled may fail writing its audio (the worker
        # says so); every workflow still queued then finishes once space is back.
        failed = {wf: status for wf, status in statuses.items() if status["status"] != "succeeded"}
        assert len(failed) <= 1, failed
        for status in failed.values():
            assert status["status"] == "failed", status
            assert "the shared volume is full" in json.dumps(status), status
        assert len(statuses) - len(failed) >= len(queued) - 1
        log = stack.log_text()
        assert "restarting nats-server: " in log
    finally:
        if stack.process.poll() is None:
            stack.process.send_signal(signal.SIGTERM)
        code = stack.process.wait(timeout=60)
    assert code == 0, stack.log_text()
