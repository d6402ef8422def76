"""`indextts-k8s local` as a user runs it: a child process, driven over HTTP, stopped with Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from nats_support.embedded_nats import free_port

COMMAND = str(Path(sys.executable).parent / "indextts-k8s")


@dataclass
class Stack:
    url: str
    share: Path
    log: Path
    process: subprocess.Popen[bytes]

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_stack(
    data_dir: Path,
    *args: str,
    env: dict[str, str] | None = None,
    new_session: bool = False,
    log: Path | None = None,
) -> Stack:
    """Start the local stack and wait until it serves; ``new_session``: in a process group of its
    own, as a terminal runs it (a Ctrl-C there is SIGINT to the whole group); its output goes to
    ``log`` (default DATA_DIR/stack.log)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log or data_dir / "stack.log"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("TTS_")}
    environment.update(env or {})
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 (the project's own command)
            [COMMAND, "local", "--data-dir", str(data_dir), "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=new_session,
        )
    stack = Stack(f"http://127.0.0.1:{port}", data_dir / "share", log, process)
    try:
        _wait_until_serving(stack)
    except BaseException:
        process.kill()
        raise
    return stack


@contextlib.contextmanager
def running_stack(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Stack]:
    """The local stack while the block runs; then SIGINT, as Ctrl-C: the stop must be clean (exit 0,
    the last line 'stopped') or the test fails."""
    stack = start_stack(data_dir, *args, env=env)
    process = stack.process
    try:
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"Ctrl-C did not stop the stack within 60 s:\n{stack.log_text()}") from None
    assert code == 0, f"the stack exited with {code}:\n{stack.log_text()}"
    assert "stopped" in stack.log_text().splitlines()[-1]


def _wait_until_serving(stack: Stack, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise AssertionError(f"the stack exited with {stack.process.returncode}:\n{stack.log_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{stack.url}/healthz", timeout=1).status_code == 200:  # after startup
                return
        time.sleep(0.1)
    raise AssertionError(f"the stack did not serve within {timeout} s:\n{stack.log_text()}")


def nats_server_pids(data_dir: Path) -> list[int]:
    """The nats-servers whose store is under ``data_dir`` (the stack's own)."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True, check=True)  # noqa: S607
    store = str(data_dir / "nats")
    return [
        int(line.split(None, 1)[0])
        for line in listing.stdout.splitlines()
        if "nats-server" in line and store in line
    ]
