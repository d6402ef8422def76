"""The local stack when its nats-server dies, and when it is stopped: the real `indextts-k8s local`
command, its real embedded nats-server SIGKILLed under load, its real worker and operator."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import nats

from nats_support.embedded_nats import free_port
from tests.local.stack import nats_server_pids, start_stack
from tts_api.nats_names import EVENTS_STREAM, WORKFLOWS_BUCKET

FAST_WORKER = {
    "TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "0.3",
    "TTS_WORKER_ACK_WAIT_SECONDS": "2",
    "TTS_WORKER_HEARTBEAT_SECONDS": "0.5",
}
HEALTH_CHECK = {
    "video_path": "/app/videos/a.mp4",
    "workflow_config": {"workflow_chain": ["indextts.health_check"]},
}


def speech(text: str, output_path: str) -> dict[str, Any]:
    return {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {"text": text, "output_path": output_path},
        },
    }


def assert_unavailable(response: httpx.Response) -> None:
    """The store is down: 503 with the workflow API's error body saying so, never a 500."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert (body["status"], body["error_code"]) == ("error", "PROCESSING_ERROR")
    assert "workflow store" in body["error"]
    assert "again" in body["error"]
    assert response.headers["Retry-After"].isdigit()


def kill_nats(stack_dir: Path) -> int:
    deadline = time.monotonic() + 10
    while len(pids := nats_server_pids(stack_dir)) != 1:
        assert time.monotonic() < deadline, f"not one nats-server of this stack: {pids}"
        time.sleep(0.05)
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]


def watch_the_gap(client: httpx.Client, killed: int, stack_dir: Path) -> list[int]:
    """``/readyz`` from the kill until the stack serves again, and that it is a new nats-server."""
    seen: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get("/readyz").status_code
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == 200 and len(seen) > 1:
            break
        time.sleep(0.01)
    pids = nats_server_pids(stack_dir)
    assert len(pids) == 1, pids
    assert pids[0] != killed
    return seen


def completed_events(nats_url: str, names: list[str]) -> tuple[dict[str, str], Counter[str]]:
    """The named workflows' uids (from the records bucket), and how many `completed` events each
    uid has on TTS_EVENTS."""

    async def read() -> tuple[dict[str, str], Counter[str]]:
        import json

        client = await nats.connect(nats_url)
        try:
            js = client.jetstream()
            kv = await js.key_value(WORKFLOWS_BUCKET)
            uids = {}
            for name in names:  # read by name: nats-py's keys() may find none just after a restart
                entry = await kv.get(name)
                assert entry.value is not None
                uids[name] = json.loads(entry.value)["metadata"]["uid"]
            info = await js.stream_info(EVENTS_STREAM, subjects_filter="tts.events.*.completed")
            counts: Counter[str] = Counter()
            for subject, count in (info.state.subjects or {}).items():
                counts[subject.split(".")[2]] += count
            return uids, counts
        finally:
            await client.close()

    return asyncio.run(read())


def test_nats_server_killed_under_load_is_restarted_and_every_workflow_finishes_once(tmp_path: Path) -> None:
    nats_port = free_port()
    stack = start_stack(
        tmp_path, "--engine", "synthetic", "--workers", "2", "--nats-port", str(nats_port), env=FAST_WORKER
    )
    accepted: list[str] = []
    refused: list[httpx.Response] = []
    other: list[httpx.Response] = []
    stop_load = threading.Event()

    def load() -> None:
        with stack.client() as client:
            index = 0
            while not stop_load.is_set():
                response = client.post(
                    "/v1/workflows",
                    params={"async": "1"},
                    json=speech(f"load {index}", f"/share/workflows/output/l{index}.wav"),
                )
                if response.status_code == 202:
                    accepted.append(response.json()["workflow_id"])
                    index += 1
                elif response.status_code == 503:
                    refused.append(response)
                else:
                    other.append(response)
                time.sleep(0.02)

    loader = threading.Thread(target=load)
    loader.start()
    gaps: list[list[int]] = []
    try:
        with stack.client() as client:
            for _ in range(3):
                time.sleep(1.5)
                killed = kill_nats(tmp_path)
                gaps.append(watch_the_gap(client, killed, tmp_path))
            time.sleep(1)
    finally:
        stop_load.set()
        loader.join(30)

    assert other == [], [(r.status_code, r.text) for r in other]
    for response in refused:
        assert_unavailable(response)
    assert gaps == [[503, 200]] * 3, gaps  # not ready during each gap, ready after it
    assert len(accepted) > 20
    with stack.client() as client:
        deadline = time.monotonic() + 120
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            statuses = {wf: client.get(f"/v1/workflows/status/{wf}").json()["status"] for wf in accepted}
            if all(status in {"succeeded", "failed", "cancelled"} for status in statuses.values()):
                break
            time.sleep(0.5)
    unfinished = [wf for wf, status in statuses.items() if status != "succeeded"]
    what_happened = [line for line in stack.log_text().splitlines() if any(wf in line for wf in unfinished)]
    assert Counter(statuses.values()) == Counter({"succeeded": len(accepted)}), (unfinished, what_happened)
    uids, completions = completed_events(f"nats://127.0.0.1:{nats_port}", accepted)
    assert {name: completions[uids[name]] for name in accepted} == dict.fromkeys(accepted, 1)
    log = stack.log_text()
    assert log.count("restarting it on") == 3
    assert log.count("nats-server is back on") == 3
    # An outage is no bug: each part says what failed in a line, none logs a traceback for it.
    assert "Traceback" not in log, [
        line for line in log.splitlines() if "Traceback" in line or "Error" in line
    ]

    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=30) == 0, log
    tail = stack.log_text()[len(log) :]
    assert "Traceback" not in tail, tail
    assert tail.splitlines()[-1].endswith("stopped")
    assert nats_server_pids(tmp_path) == []


def test_ctrl_c_in_a_terminal_stops_the_stack_cleanly(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C: the nats-server is not in the group,
    so the stack stops its parts in order and NATS last, with no traceback, and exits 0. A synchronous
    request still waiting is answered with its workflow's status, not a 500."""
    env = {"TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "30"}
    stack = start_stack(tmp_path, "--engine", "synthetic", env=env, new_session=True)
    answers: list[httpx.Response] = []

    def wait_for_a_long_job() -> None:
        with stack.client() as client:
            answers.append(
                client.post("/v1/workflows", json=speech("a long one", "/share/workflows/output/long.wav"))
            )

    waiting = threading.Thread(target=wait_for_a_long_job)
    waiting.start()
    with stack.client() as client:
        deadline = time.monotonic() + 20
        while client.get("/api/v1/monitoring/gpu-lock/health").json()["active_locks"] != 1:
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
    os.killpg(stack.process.pid, signal.SIGINT)
    code = stack.process.wait(timeout=60)
    waiting.join(10)
    log = stack.log_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert log.splitlines()[-1].endswith("stopped")
    assert nats_server_pids(tmp_path) == []
    assert [answer.status_code for answer in answers] in ([202], [200]), [a.text for a in answers]


def test_the_stack_stopped_while_nats_is_down_exits_cleanly(tmp_path: Path) -> None:
    """SIGTERM right after its nats-server was killed (before or during its restart): exit 0."""
    stack = start_stack(tmp_path, "--engine", "synthetic")
    kill_nats(tmp_path)
    stack.process.send_signal(signal.SIGTERM)
    try:
        code = stack.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        stack.process.kill()
        raise AssertionError(stack.log_text()) from None
    log = stack.log_text()
    assert code == 0, log
    assert "Traceback" not in log, log
    assert nats_server_pids(tmp_path) == []
