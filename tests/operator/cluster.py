"""A "cluster" for the operator's scenarios: an emulated API server (kmock) or the one in KUBECONFIG.

Both are reached the same way, through the official Kubernetes client, so a scenario written against
:class:`Cluster` runs unchanged on either. The operator under test is the real kopf operator with
the project's handlers (:func:`running_operator`), in a thread as ``kopf run`` would run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import kopf
import yaml
from kopf.testing import KopfRunner

from kube_access.client import api_client
from tts_api.constants import API_GROUP, API_GROUP_VERSION, API_VERSION, KIND, PLURAL
from tts_api.policy import ValidationPolicy
from tts_operator.handlers import register
from tts_operator.settings import Settings

CRD_FILE = Path(__file__).resolve().parents[2] / "crds" / f"{PLURAL}.{API_GROUP}.yaml"


class Cluster:
    """TTSWorkflows and their Events in one namespace of an API server."""

    def __init__(self, api_url: str, namespace: str, *, emulated: bool) -> None:
        from kubernetes import client

        self.api_url = api_url  # "" for KUBECONFIG
        self.namespace = namespace
        self.emulated = emulated
        api = api_client(api_url)
        self._custom: Any = client.CustomObjectsApi(api)
        self._core: Any = client.CoreV1Api(api)

    async def create(self, name: str, spec: dict[str, Any]) -> None:
        body: dict[str, Any] = {
            "apiVersion": API_GROUP_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        if self.emulated:
            # kmock assigns no resourceVersion, and kopf's finalizer patch tests for one.
            body["metadata"]["resourceVersion"] = "1"
        await asyncio.to_thread(
            self._custom.create_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace, PLURAL, body
        )

    async def get(self, name: str) -> dict[str, Any] | None:
        from kubernetes.client import ApiException

        try:
            body: dict[str, Any] = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return body

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(
            self._custom.delete_namespaced_custom_object, API_GROUP, API_VERSION, self.namespace, PLURAL, name
        )

    async def event_reasons(self, name: str) -> list[str]:
        """Reasons of the Events posted on workflow ``name``, oldest first."""
        listing = await asyncio.to_thread(self._core.list_namespaced_event, self.namespace)
        events = [e for e in listing.items if e.involved_object and e.involved_object.name == name]
        events.sort(key=lambda e: e.metadata.name or "")
        return [e.reason for e in events]

    async def wait_for(
        self, name: str, check: Callable[[dict[str, Any] | None], bool], *, within: float = 20.0
    ) -> dict[str, Any] | None:
        """Poll until ``check(body)`` holds (body None: the workflow is gone); fail after ``within`` s."""
        deadline = time.monotonic() + within
        body = None
        while time.monotonic() < deadline:
            body = await self.get(name)
            if check(body):
                return body
            await asyncio.sleep(0.1)
        raise AssertionError(f"{name} did not get there within {within} s; last seen: {body}")

    async def cleanup(self, name: str) -> None:
        """Remove a workflow, finalizers included (for a real cluster after a failed scenario)."""
        with contextlib.suppress(Exception):
            await asyncio.to_thread(
                self._custom.patch_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURAL,
                name,
                {"metadata": {"finalizers": None}},
                _content_type="application/merge-patch+json",
            )
            await self.delete(name)


def phase_is(*phases: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda body: body is not None and (body.get("status") or {}).get("phase") in phases


# --- the emulated API server --------------------------------------------------------------------


@contextlib.contextmanager
def emulated_api_server() -> Iterator[str]:
    """kmock's Kubernetes emulator in a thread of its own (so that blocking calls of the test or of
    kopf's shutdown never stall it); yields its URL."""
    import kmock

    ready = threading.Event()
    url: list[str] = []
    stop: list[Callable[[], None]] = []

    async def serve() -> None:
        emulator = kmock.KubernetesEmulator()
        # kmock's quirks (see ENVIRONMENT.md): kopf needs these resources declared to start.
        emulator.resources["v1/namespaces"] = kmock.ResourceInfo(kind="Namespace", namespaced=False)
        emulator.resources["apiextensions.k8s.io/v1/customresourcedefinitions"] = kmock.ResourceInfo(
            kind="CustomResourceDefinition", namespaced=False
        )
        emulator.resources["v1/events"] = kmock.ResourceInfo(kind="Event", namespaced=True)
        # The gateway reads the GPU quota (the GPU lock's capacity).
        emulator.resources["v1/resourcequotas"] = kmock.ResourceInfo(kind="ResourceQuota", namespaced=True)
        emulator.resources["coordination.k8s.io/v1/leases"] = kmock.ResourceInfo(
            kind="Lease", namespaced=True
        )
        emulator.resources[f"{API_GROUP}/{API_VERSION}/{PLURAL}"] = kmock.ResourceInfo(
            kind=KIND,
            namespaced=True,
            singular=KIND.lower(),
            subresources={"status"},
            verbs={"get", "list", "watch", "create", "patch", "delete"},
        )
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            loop.call_soon_threadsafe(stopped.set)

        stop.append(request_stop)
        async with emulator, kmock.Server(emulator):
            url.append(str(emulator.url).rstrip("/"))
            ready.set()
            await stopped.wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="kmock", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("kmock did not start within 10 s")
    try:
        yield url[0]
    finally:
        stop[0]()
        thread.join(10)


def crd_installed(api_url: str) -> bool:
    from kubernetes import client
    from kubernetes.client import ApiException

    api: Any = client.ApiextensionsV1Api(api_client(api_url))
    try:
        api.read_custom_resource_definition(yaml.safe_load(CRD_FILE.read_text())["metadata"]["name"])
    except ApiException:
        return False
    return True


def ensure_namespace(name: str, api_url: str = "") -> None:
    from kubernetes import client
    from kubernetes.client import ApiException

    api: Any = client.CoreV1Api(api_client(api_url))
    try:
        api.create_namespace({"metadata": {"name": name}})
    except ApiException as exc:
        if exc.status != 409:  # it exists
            raise


# --- the operator under test --------------------------------------------------------------------


def operator_settings(cluster: Cluster, nats_url: str, **overrides: Any) -> Settings:
    """Settings with short times, so that timeouts and retries happen within seconds."""
    values: dict[str, Any] = {
        "nats_url": nats_url,
        "kube_api_url": cluster.api_url,
        # kmock answers namespace listings with 500: kopf watches it cluster-wide (-A).
        "namespaces": "" if cluster.emulated else cluster.namespace,
        "heartbeat_stale_seconds": 1.5,
        "tick_seconds": 0.3,
        "ttl_check_seconds": 1.0,
        "max_attempts": 2,
        "max_worker_losses": 2,
        "backoff_base_seconds": 0.2,
        "backoff_max_seconds": 0.5,
        "heartbeat_batch_seconds": 0.3,
        "leader_election": False,
        "metrics_port": 0,
        "events": "all",  # the scenarios follow every transition's Event (the default posts warnings only)
    }
    return Settings(**(values | overrides))


@contextlib.asynccontextmanager
async def running_operator(settings: Settings) -> AsyncIterator[KopfRunner]:
    """The real kopf operator with the project's handlers, as ``kopf run --standalone`` runs it."""
    registry = kopf.OperatorRegistry()
    # The policy the operator's command reads from the environment (the tests clear TTS_* variables).
    register(registry, settings, policy=ValidationPolicy())
    namespaces = settings.namespace_list()
    scope = [f"--namespace={ns}" for ns in namespaces] if namespaces else ["-A"]
    args = ["run", "--standalone", *scope]
    runner = KopfRunner(args, registry=registry, timeout=30)
    await asyncio.to_thread(runner.__enter__)
    try:
        yield runner
    finally:
        await asyncio.to_thread(runner.__exit__, None, None, None)


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, within: float = 10.0, what: str = ""
) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within} s: {what}")
