"""The project's processes against a real API server: the operator, the gateway and the workers.

Each runs as ``indextts-k8s <command>`` in a child process of its own, configured only through its
environment as a pod of the chart is, and authenticated by the kubeconfig it is given (a
ServiceAccount's token, never the admin's, in the tests). Its output goes to a log file, which the
tests read: :func:`forbidden_lines` finds the API server's refusals in it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from nats_support.embedded_nats import die_with_parent, free_port, stop_child

STOP_TIMEOUT_SECONDS = 15.0
# A 403 as kopf, the Kubernetes client or our own log lines show it (not the 403 of a timestamp's
# milliseconds, "12:00:01.403" or "12:00:01,403" as Python's logging writes it).
FORBIDDEN = re.compile(r"(?<![\w.,:+-])403(?![\w.:])|forbidden", re.IGNORECASE)
SHARED_PREFIX = "/share"


class ComponentError(RuntimeError):
    """A component exited, or did not become ready in time; the message carries its log's tail."""


@dataclass
class Component:
    """One running process of the project, and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_file: Path
    url: str = ""  # where it serves HTTP, if it does

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a node losing power or the OOM killer would, and reap it."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL after a while."""
        stop_child(self.process, STOP_TIMEOUT_SECONDS)

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first match of ``pattern`` in the log, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            found = compiled.search(self.log())
            if found is not None:
                return found
            if not self.alive():
                raise ComponentError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ComponentError(f"{self.name} logged no /{pattern}/ within {timeout} s:\n{self.tail()}")
            time.sleep(0.1)


def forbidden_lines(text: str) -> list[str]:
    """The lines of a log that report a 403 from the API server."""
    return [line for line in text.splitlines() if FORBIDDEN.search(line)]


# The model the stack's workers serve (the synthetic engine's): as the chart does, every component
# is given it as the one model requests are for.
STACK_MODEL = "synthetic"


def shared_env(share_dir: Path) -> dict[str, str]:
    """What every component reads about the shared volume (``/share/...`` paths land in share_dir)
    and about the model the stack serves."""
    return {
        "TTS_SHARED_DIR": str(share_dir),
        "TTS_SHARED_PREFIX": SHARED_PREFIX,
        "TTS_MODELS": STACK_MODEL,
        "TTS_DEFAULT_MODEL": STACK_MODEL,
    }


def _spawn(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Component:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    # Only what a pod would have: no KUBECONFIG or TTS_* of the caller's leaks in.
    base = {key: value for key, value in os.environ.items() if not key.startswith(("TTS_", "KUBE"))}
    with log_file.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 (this interpreter, the project's own entry point)
            [sys.executable, "-m", "tts_cli.main", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**base, "PYTHONUNBUFFERED": "1", **env},
            preexec_fn=die_with_parent,
        )
    return Component(name, process, log_file)


def _wait_http(component: Component, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(component.url + path, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if not component.alive():
            code = component.process.returncode
            raise ComponentError(f"{component.name} exited ({code}):\n{component.tail()}")
        if time.monotonic() > deadline:
            raise ComponentError(f"{component.name} {path} not ready within {timeout} s:\n{component.tail()}")
        time.sleep(0.2)


def start_operator(
    name: str,
    *,
    kubeconfig: Path,
    nats_url: str,
    namespace: str,
    share_dir: Path,
    log_dir: Path,
    lease_namespace: str | None = None,
    lease_name: str = "",
    env: Mapping[str, str] | None = None,
) -> Component:
    """``indextts-k8s operator`` watching ``namespace``; with ``lease_namespace``, leader election
    on (the Lease ``lease_name`` there), else ``--standalone``. Returns once it has started (not
    necessarily leading); its ``url`` serves its Prometheus metrics."""
    metrics_port = free_port()
    settings = {
        **shared_env(share_dir),
        "KUBECONFIG": str(kubeconfig),
        "POD_NAME": name,
        "TTS_OPERATOR_METRICS_PORT": str(metrics_port),
        "TTS_OPERATOR_NATS_URL": nats_url,
        "TTS_OPERATOR_NAMESPACES": namespace,
        "TTS_OPERATOR_TICK_SECONDS": "1",
        "TTS_OPERATOR_LEADER_ELECTION": "true" if lease_namespace else "false",
    }
    if lease_namespace:
        settings["TTS_OPERATOR_LEASE_NAMESPACE"] = lease_namespace
        if lease_name:
            settings["TTS_OPERATOR_LEASE_NAME"] = lease_name
    component = _spawn(name, ["operator"], {**settings, **(env or {})}, log_dir)
    component.url = f"http://127.0.0.1:{metrics_port}"  # its /metrics
    return component


def start_gateway(
    *,
    kubeconfig: Path,
    nats_url: str,
    namespace: str,
    share_dir: Path,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    name: str = "gateway",
    ready_timeout: float = 60.0,
) -> Component:
    """``indextts-k8s gateway`` over ``namespace``'s TTSWorkflows, on a free port; returns once
    ``/readyz`` answers 200."""
    port = free_port()
    settings = {
        **shared_env(share_dir),
        "KUBECONFIG": str(kubeconfig),
        "TTS_GATEWAY_HOST": "127.0.0.1",
        "TTS_GATEWAY_PORT": str(port),
        "TTS_GATEWAY_METRICS_PORT": str(free_port()),
        "TTS_GATEWAY_NATS_URL": nats_url,
        "TTS_GATEWAY_NAMESPACE": namespace,
    }
    component = _spawn(name, ["gateway"], {**settings, **(env or {})}, log_dir)
    component.url = f"http://127.0.0.1:{port}"
    _wait_http(component, "/readyz", ready_timeout)
    return component


def start_worker(
    name: str,
    *,
    nats_url: str,
    share_dir: Path,
    log_dir: Path,
    engine: str = "synthetic",
    slots: int = 1,
    synthetic_delay_seconds: float = 0.2,
    env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
) -> Component:
    """``indextts-k8s worker`` (an inference pod's process) with ``engine``; returns once ``/readyz``
    answers 200 (its engines are loaded and it reads jobs)."""
    port = free_port()
    settings = {
        **shared_env(share_dir),
        "POD_NAME": name,
        "TTS_WORKER_NATS_URL": nats_url,
        "TTS_WORKER_ENGINE": engine,
        "TTS_WORKER_SLOTS": str(slots),
        "TTS_WORKER_HTTP_HOST": "127.0.0.1",
        "TTS_WORKER_HTTP_PORT": str(port),
        "TTS_WORKER_HEARTBEAT_SECONDS": "1",
        "TTS_WORKER_SYNTHETIC_DELAY_SECONDS": str(synthetic_delay_seconds),
    }
    component = _spawn(name, ["worker"], {**settings, **(env or {})}, log_dir)
    component.url = f"http://127.0.0.1:{port}"
    _wait_http(component, "/readyz", ready_timeout)
    return component


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> float:
    """Seconds until ``check()`` held; :class:`TimeoutError` naming ``what`` after ``timeout``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
