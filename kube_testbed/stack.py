"""The whole stack on a real API server, as the chart installs it: the chart's ServiceAccounts, Roles,
bindings and Lease (applied as rendered, see :func:`apply_chart_rbac`); the operator, the gateway and
inference workers as processes of their own, each authenticated by its ServiceAccount's token (never
as admin), and a nats-server between them (:func:`running_stack`).

Used by tests/integration and by the benchmarks (``bench/control_plane.py``).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client, utils

from kube_testbed.apiserver import RealApiServer, service_account_username
from kube_testbed.components import Component, start_gateway, start_operator, start_worker, wait_until
from kube_testbed.helm import NAMESPACE, Helm, by_kind, component, fetch_helm
from nats_support.embedded_nats import EmbeddedNats
from tts_api.constants import API_GROUP, API_VERSION, PLURAL

RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")
OPERATOR_ACCOUNT = component("operator")
GATEWAY_ACCOUNT = component("gateway")
LEASE_NAME = component("operator")
# Short enough for the tests: a Lease of 6 s (the operator's default is 15 s), and a stage whose worker
# has been silent for 5 s (workers beat every second here) counts as lost (default 30 s).
OPERATOR_ENV = {
    "TTS_OPERATOR_LEASE_DURATION_SECONDS": "6",
    "TTS_OPERATOR_LEASE_RENEW_SECONDS": "2",
    "TTS_OPERATOR_HEARTBEAT_STALE_SECONDS": "5",
    "TTS_OPERATOR_BACKOFF_BASE_SECONDS": "0.5",
}


@dataclass
class Stack:
    """The running stack and what it was started with."""

    api: RealApiServer
    nats: EmbeddedNats
    share_dir: Path
    log_dir: Path
    operator_kubeconfig: Path
    gateway_kubeconfig: Path
    worker_slots: int = 1
    operator: Component | None = None
    gateway: Component | None = None
    workers: list[Component] = field(default_factory=list)
    retired: list[Component] = field(default_factory=list)  # stopped or killed: their logs still count

    @property
    def namespace(self) -> str:
        return NAMESPACE

    def components(self) -> list[Component]:
        running = [c for c in (self.operator, self.gateway) if c is not None]
        return [*running, *self.workers, *self.retired]

    def new_operator(self, name: str, *, env: dict[str, str] | None = None) -> Component:
        """One more operator replica (leader election on, as the chart runs it)."""
        replica = start_operator(
            name,
            kubeconfig=self.operator_kubeconfig,
            nats_url=self.nats.url,
            namespace=NAMESPACE,
            share_dir=self.share_dir,
            log_dir=self.log_dir,
            lease_namespace=NAMESPACE,
            lease_name=LEASE_NAME,
            env={**OPERATOR_ENV, **(env or {})},
        )
        self.retired.append(replica)  # its log is checked; the caller stops it
        return replica

    def restart_operator(self, *, env: dict[str, str] | None = None) -> Component:
        """Stop the operator (if it still runs) and start a new one (with ``env`` over the usual
        settings); returns once it reconciles."""
        if self.operator is not None:
            self.operator.stop()
            self.retired.append(self.operator)
        self.operator = self.new_operator(f"operator-{secrets.token_hex(3)}", env=env)
        self.retired.remove(self.operator)
        self.operator.wait_for_log(r"operator connected to NATS", timeout=60)
        return self.operator

    def restart_worker(self, index: int) -> Component:
        old = self.workers[index]
        old.stop()
        self.retired.append(old)
        self.workers[index] = self.new_worker()
        return self.workers[index]

    @contextmanager
    def slow_workers(self, seconds: float, count: int = 1) -> Iterator[list[Component]]:
        """Only ``count`` workers whose jobs take ``seconds`` while in the block; the fast ones after."""
        for worker in self.workers:
            worker.stop()
            self.retired.append(worker)
        self.workers = [self.new_worker(synthetic_delay_seconds=seconds) for _ in range(count)]
        try:
            yield self.workers
        finally:
            for worker in self.workers:
                worker.stop()
                self.retired.append(worker)
            self.workers = [self.new_worker(), self.new_worker()]

    def new_worker(self, *, synthetic_delay_seconds: float = 0.2) -> Component:
        return start_worker(
            f"worker-{secrets.token_hex(3)}",
            nats_url=self.nats.url,
            share_dir=self.share_dir,
            log_dir=self.log_dir,
            synthetic_delay_seconds=synthetic_delay_seconds,
            slots=self.worker_slots,
        )

    def delete_all_workflows(self, timeout: float = 60.0) -> None:
        """Delete every TTSWorkflow of the namespace and wait until the operator let them go."""
        with self.api.api_client() as admin:
            custom = client.CustomObjectsApi(admin)
            custom.delete_collection_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL)

            def none_left() -> bool:
                listing: Any = custom.list_namespaced_custom_object(API_GROUP, API_VERSION, NAMESPACE, PLURAL)
                return not listing["items"]

            wait_until(none_left, timeout, "every TTSWorkflow deleted")

    def client(self) -> httpx.Client:
        """An HTTP client of the gateway."""
        if self.gateway is None:
            raise RuntimeError("the stack has no gateway running")
        return httpx.Client(base_url=self.gateway.url, timeout=60)


def _service_account_kubeconfig(api: RealApiServer, name: str) -> Path:
    api.service_account_token(NAMESPACE, name)
    return api.kubeconfig(service_account_username(NAMESPACE, name))


def _apply_chart_lease(api: RealApiServer) -> None:
    """The chart's Lease object (holder empty), created as Helm would, by admin."""
    (lease,) = by_kind(Helm(fetch_helm()).template(), "Lease")
    with api.api_client() as admin:
        _create(admin, lease)


def apply_chart_rbac(api: RealApiServer) -> list[dict[str, Any]]:
    """The chart's ServiceAccounts, Roles, ClusterRoles and bindings (default values), created on the
    server unchanged in the release namespace, as Helm would (admin); returns them."""
    docs = Helm(fetch_helm()).template()
    rbac = [doc for kind in RBAC_KINDS for doc in by_kind(docs, kind)]
    api.ensure_namespace(NAMESPACE)
    with api.api_client() as admin:
        for doc in rbac:
            _create(admin, doc)
    return rbac


def _create(admin: Any, doc: dict[str, Any]) -> None:
    try:
        utils.create_from_dict(admin, doc, namespace=NAMESPACE)  # type: ignore[no-untyped-call]
    except utils.FailToCreateError as exc:
        if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
            raise


@contextmanager
def running_stack(api: RealApiServer, *, workers: int = 2, worker_slots: int = 1) -> Iterator[Stack]:
    """The operator, the gateway and ``workers`` synthetic workers on ``api``, whose CRD and chart RBAC
    (:func:`apply_chart_rbac`) must be in place; everything stopped on exit."""
    work = Path(tempfile.mkdtemp(prefix="tts-stack-"))
    share_dir = work / "share"
    share_dir.mkdir()
    _apply_chart_lease(api)
    with EmbeddedNats(work / "jetstream") as nats:
        running = Stack(
            api=api,
            nats=nats,
            share_dir=share_dir,
            log_dir=work / "logs",
            operator_kubeconfig=_service_account_kubeconfig(api, OPERATOR_ACCOUNT),
            gateway_kubeconfig=_service_account_kubeconfig(api, GATEWAY_ACCOUNT),
            worker_slots=worker_slots,
        )
        try:
            running.restart_operator()
            running.gateway = start_gateway(
                kubeconfig=running.gateway_kubeconfig,
                nats_url=nats.url,
                namespace=NAMESPACE,
                share_dir=share_dir,
                log_dir=running.log_dir,
            )
            running.workers = [running.new_worker() for _ in range(workers)]
            yield running
        finally:
            if running.operator is not None and running.operator.alive():
                running.delete_all_workflows()
            for part in running.components():
                part.stop()
    shutil.rmtree(work, ignore_errors=True)
