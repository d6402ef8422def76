"""A real Kubernetes API server for tests: etcd and kube-apiserver as child processes.

envtest's way, in Python: ``with real_api_server(users) as server:`` starts etcd and kube-apiserver on
free ports of 127.0.0.1 in a temporary directory (a self-made CA and serving certificate, a static
token file, RBAC, a service-account key pair, ResourceQuota admission), waits for ``/readyz`` and
stops both on exit (SIGTERM, then SIGKILL).

The binaries come from ``$KUBEBUILDER_ASSETS`` when it is set (a directory holding ``etcd``,
``kube-apiserver`` and ``kubectl``, as envtest's), else from ``kube-assets/`` under the user's cache
directory (``$KUBE_ASSETS_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/indextts-k8s``), which
``scripts/kube_apiserver_assets.sh`` builds from Debian's Kubernetes 1.20 sources.

Identities:

* ``admin`` (group ``system:masters``) and the ``users`` passed at start, by static token (the token
  file is read once, at start, so its users are fixed then);
* any ServiceAccount, at any time: :meth:`RealApiServer.service_account_token` asks the server for a
  token (TokenRequest), exactly what a pod of the chart would get.

No controller-manager and no node run: objects are stored, validated, admitted and authorized, but
nothing reconciles them (Deployments make no pods; pods stay Pending; namespaces get no ``default``
ServiceAccount unless :meth:`RealApiServer.ensure_namespace` makes it).
"""

from __future__ import annotations

import copy
import http.client
import os
import re
import secrets
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client import ApiException

from nats_support.embedded_nats import die_with_parent, free_port, stop_child

REPO = Path(__file__).resolve().parents[1]
ASSETS_SCRIPT = REPO / "scripts" / "kube_apiserver_assets.sh"
ASSETS_ENV = "KUBEBUILDER_ASSETS"
ADMIN = "admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
# The first version whose CRDs take CEL rules (x-kubernetes-validations, beta and on by default).
CEL_RULES_SINCE = (1, 25)
# kube-apiserver's unauthenticated port: on by default before 1.20's deprecation, flag gone in 1.24.
INSECURE_PORT_FLAG_UNTIL = (1, 24)
STOP_TIMEOUT_SECONDS = 10.0
ETCD_IN_MEMORY_MIN_FREE_BYTES = 1 << 30
LOG_TAIL_LINES = 40


class AssetsNotFoundError(Exception):
    """No etcd and kube-apiserver binaries: neither ``$KUBEBUILDER_ASSETS`` nor the built cache."""


class ApiServerError(RuntimeError):
    """etcd or kube-apiserver failed to start; the message carries the tails of their logs."""


# --- the binaries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assets:
    """The binaries to run (envtest's layout: one directory)."""

    directory: Path
    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    kube_controller_manager: Path | None


def default_assets_directory() -> Path:
    """Where ``scripts/kube_apiserver_assets.sh`` puts what it builds (the same rule as the script's)."""
    cache = os.environ.get("KUBE_ASSETS_CACHE")
    if cache:
        return Path(cache) / "kube-assets"
    user_cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(user_cache) / "indextts-k8s" / "kube-assets"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_assets() -> Assets:
    """``$KUBEBUILDER_ASSETS`` when set (an error if it lacks a binary), else the built cache."""
    named = os.environ.get(ASSETS_ENV)
    directory = Path(named) if named else default_assets_directory()
    where = f"{ASSETS_ENV}={named}" if named else str(directory)
    missing = [name for name in ("etcd", "kube-apiserver", "kubectl") if not _executable(directory / name)]
    if missing:
        hint = "" if named else f" (build them with {ASSETS_SCRIPT.relative_to(REPO)}, or set {ASSETS_ENV})"
        raise AssetsNotFoundError(f"no {' and no '.join(missing)} in {where}{hint}")
    controller_manager = directory / "kube-controller-manager"
    return Assets(
        directory=directory,
        etcd=directory / "etcd",
        kube_apiserver=directory / "kube-apiserver",
        kubectl=directory / "kubectl",
        kube_controller_manager=controller_manager if _executable(controller_manager) else None,
    )


def binary_version(kube_apiserver: Path) -> tuple[int, int]:
    """(major, minor) of a kube-apiserver binary, from ``--version`` ("Kubernetes v1.20.2")."""
    done = subprocess.run(  # noqa: S603 (a binary of the assets directory)
        [str(kube_apiserver), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    found = re.search(r"v(\d+)\.(\d+)", done.stdout)
    if done.returncode != 0 or found is None:
        raise ApiServerError(f"{kube_apiserver} --version: {done.stdout.strip()} {done.stderr.strip()}")
    return int(found.group(1)), int(found.group(2))


# --- manifests for an older server ----------------------------------------------------------------


def without_cel_rules(document: Any) -> Any:
    """A deep copy of ``document`` without any ``x-kubernetes-validations`` (CEL rules) key.

    Servers before 1.25 know no CEL rules: they drop the field (and kubectl refuses it). The rules'
    checks are then not made by the server; tests of those rules need a newer server."""
    if isinstance(document, Mapping):
        return {
            key: without_cel_rules(value)
            for key, value in document.items()
            if key != "x-kubernetes-validations"
        }
    if isinstance(document, list):
        return [without_cel_rules(item) for item in document]
    return copy.deepcopy(document)


def crd_for_server(crd: Mapping[str, Any], version: tuple[int, int]) -> dict[str, Any]:
    """The CRD as a server of ``version`` takes it: CEL rules stripped before 1.25."""
    adapted: dict[str, Any] = (
        without_cel_rules(crd) if version < CEL_RULES_SINCE else copy.deepcopy(dict(crd))
    )
    return adapted


# --- identities -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """A static-token user: its name and groups (RBAC subjects of kind User and Group)."""

    name: str
    groups: tuple[str, ...] = ()


def service_account_username(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


# --- the running server ---------------------------------------------------------------------------


@dataclass
class RealApiServer:
    """A started API server: its address, CA, and bearer tokens by user name."""

    url: str
    ca_file: Path
    admin_token: str
    workdir: Path
    version: tuple[int, int]
    etcd_url: str
    started_in: float  # seconds from the first process start to /readyz answering ok
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, user: str = ADMIN) -> str:
        try:
            return self.tokens[user]
        except KeyError:
            known = ", ".join(sorted(self.tokens))
            raise KeyError(f"no token for user {user!r}; known: {known}") from None

    def configuration(self, user: str = ADMIN) -> client.Configuration:
        configuration = client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"BearerToken": self.token(user)}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
        return configuration

    def api_client(self, user: str = ADMIN) -> client.ApiClient:
        """A kubernetes client authenticated as ``user`` (close it, or use it in a ``with``)."""
        return client.ApiClient(self.configuration(user))

    def kubeconfig(self, user: str = ADMIN) -> Path:
        """A kubeconfig file for ``user`` (for kubectl, kopf, or ``KUBECONFIG``), in the server's dir."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", user)
        path = self.workdir / "kubeconfigs" / f"{safe}.yaml"
        path.parent.mkdir(exist_ok=True)
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "test", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
            ],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        path.chmod(0o600)
        return path

    def service_account_token(self, namespace: str, name: str, *, expiration_seconds: int = 86400) -> str:
        """A token of an existing ServiceAccount (TokenRequest); also kept under its user name,
        ``system:serviceaccount:NAMESPACE:NAME``, for :meth:`kubeconfig` and :meth:`api_client`."""
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=expiration_seconds)
        )
        with self.api_client() as api:
            answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
        if answer.status is None or not answer.status.token:
            raise ApiServerError(f"TokenRequest for {namespace}/{name} answered no token")
        token: str = answer.status.token
        self.tokens[service_account_username(namespace, name)] = token
        return token

    def ensure_namespace(self, name: str) -> None:
        """The namespace, with the ``default`` ServiceAccount a controller-manager would make (no
        token mounted), so that pods can be admitted; nothing happens for what exists already."""
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            for create in (
                lambda: core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name))),
                lambda: core.create_namespaced_service_account(
                    name,
                    client.V1ServiceAccount(
                        metadata=client.V1ObjectMeta(name="default"), automount_service_account_token=False
                    ),
                ),
            ):
                try:
                    create()
                except ApiException as exc:
                    if exc.status != 409:
                        raise

    def install_crd(self, crd: Mapping[str, Any], *, timeout: float = 30.0) -> dict[str, Any]:
        """Create the CRD (CEL rules stripped for an older server) and wait until it is Established."""
        body = crd_for_server(crd, self.version)
        name = body["metadata"]["name"]
        with self.api_client() as api:
            extensions = client.ApiextensionsV1Api(api)
            # A plain body (the client serializes dicts as they are): no round trip through the models.
            extensions.create_custom_resource_definition(body)  # type: ignore[arg-type]
            deadline = time.monotonic() + timeout
            while True:
                current: Any = extensions.api_client.sanitize_for_serialization(
                    extensions.read_custom_resource_definition(name)
                )
                conditions = {c["type"]: c["status"] for c in current.get("status", {}).get("conditions", [])}
                if conditions.get("Established") == "True":
                    established: dict[str, Any] = current
                    return established
                if time.monotonic() > deadline:
                    raise TimeoutError(f"CRD {name} not Established within {timeout} s: {conditions}")
                time.sleep(0.1)


# --- starting and stopping ------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ApiServerError("openssl not found: it makes the server's CA and certificates")
    done = subprocess.run(  # noqa: S603 (openssl, fixed arguments)
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ApiServerError(f"openssl {' '.join(args)} failed: {done.stderr.strip()}")


OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1, DNS:localhost, DNS:kubernetes, DNS:kubernetes.default, \
DNS:kubernetes.default.svc, IP:10.0.0.1
"""


def make_certificates(directory: Path) -> None:
    """ca.{crt,key}, a serving certificate server.{crt,key} for 127.0.0.1 and localhost signed by
    it, and the service-account signing key pair sa.{key,pub}."""
    (directory / "openssl.cnf").write_text(OPENSSL_CONFIG)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", "-config", "openssl.cnf", "-extensions", "ca", *ec, "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "30", "-subj", "/CN=kube-test-ca", cwd=directory)  # fmt: skip
    _openssl("req", "-new", "-config", "openssl.cnf", *ec, "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=kube-apiserver", cwd=directory)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "30", "-extfile", "openssl.cnf", "-extensions", "server",
             cwd=directory)  # fmt: skip
    _openssl(
        "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key", cwd=directory
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def _token_file(path: Path, users: Mapping[str, tuple[str, tuple[str, ...]]]) -> None:
    """kube-apiserver's --token-auth-file: ``token,user,uid,"group1,group2"`` a line."""
    lines = [f'{token},{name},{name},"{",".join(groups)}"' for name, (token, groups) in users.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} unreadable)"
    return "\n".join(text.splitlines()[-lines:])


def _get(host: str, port: int, path: str, *, context: ssl.SSLContext | None, token: str = "") -> int:
    """The HTTP status of GET ``path`` (0 when the server does not answer)."""
    connection: http.client.HTTPConnection
    if context is None:
        connection = http.client.HTTPConnection(host, port, timeout=2)
    else:
        connection = http.client.HTTPSConnection(host, port, timeout=2, context=context)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        return connection.getresponse().status
    except OSError:
        return 0
    finally:
        connection.close()


class _Child:
    """A child process whose output goes to a log file."""

    def __init__(self, name: str, command: Sequence[str], log_file: Path) -> None:
        self.name = name
        self.log_file = log_file
        with log_file.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (binaries of the assets directory)
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent,
            )

    def exited(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        stop_child(self.process, STOP_TIMEOUT_SECONDS)


def _wait_until(
    ready: Any, children: Sequence[_Child], what: str, timeout: float, logs: Sequence[Path]
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for child in children:
            if child.exited() is not None:
                raise ApiServerError(
                    f"{child.name} exited with {child.exited()} while waiting for {what}\n" + _logs(logs)
                )
        if time.monotonic() > deadline:
            raise ApiServerError(f"{what} not ready within {timeout} s\n" + _logs(logs))
        time.sleep(0.1)


def _logs(logs: Sequence[Path]) -> str:
    return "\n".join(f"--- {path.name} (last {LOG_TAIL_LINES} lines) ---\n{_tail(path)}" for path in logs)


def _etcd_data_dir(stack: ExitStack) -> Path:
    """In memory (/dev/shm) when it has room, as etcd syncs every write (it takes ~130 MB there,
    its preallocated write-ahead log mostly); else in the temporary directory."""
    shm = Path("/dev/shm")
    parent: str | None = None
    if shm.is_dir() and os.access(shm, os.W_OK):
        stats = os.statvfs(shm)
        if stats.f_bavail * stats.f_frsize >= ETCD_IN_MEMORY_MIN_FREE_BYTES:
            parent = str(shm)
    directory = Path(tempfile.mkdtemp(prefix="kube-etcd-", dir=parent))
    stack.callback(shutil.rmtree, directory, ignore_errors=True)
    return directory


@contextmanager
def real_api_server(
    users: Iterable[User] = (),
    *,
    assets: Assets | None = None,
    extra_args: Sequence[str] = (),
    admission_plugins: Sequence[str] = (
        "NamespaceLifecycle",
        "LimitRanger",
        "ServiceAccount",
        "ResourceQuota",
    ),
    startup_timeout: float = 90.0,
) -> Iterator[RealApiServer]:
    """Start etcd and kube-apiserver, yield the server once /readyz is ok, stop both on exit.

    ``users``: static-token users besides ``admin`` (``server.token(name)``, ``server.kubeconfig(name)``).
    ``extra_args``: more kube-apiserver flags (a later flag overrides an earlier one).
    Raises :class:`AssetsNotFoundError` without binaries, :class:`ApiServerError` when either process
    fails to come up (with the tails of both logs)."""
    found = assets or find_assets()
    version = binary_version(found.kube_apiserver)
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="kube-apiserver-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        make_certificates(workdir)

        identities: dict[str, tuple[str, tuple[str, ...]]] = {
            ADMIN: (secrets.token_hex(16), ("system:masters",))
        }
        for user in users:
            if user.name in identities:
                raise ValueError(f"user {user.name!r} given twice (or named like the admin)")
            identities[user.name] = (secrets.token_hex(16), tuple(user.groups))
        _token_file(workdir / "tokens.csv", identities)

        host = "127.0.0.1"
        etcd_port, peer_port, api_port = free_port(host), free_port(host), free_port(host)
        etcd_url = f"http://{host}:{etcd_port}"
        etcd_log, api_log = workdir / "etcd.log", workdir / "kube-apiserver.log"
        logs = (etcd_log, api_log)
        started = time.monotonic()

        etcd = _Child(
            "etcd",
            [
                str(found.etcd),
                "--name=default",
                f"--data-dir={_etcd_data_dir(stack)}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://{host}:{peer_port}",
                f"--initial-advertise-peer-urls=http://{host}:{peer_port}",
                f"--initial-cluster=default=http://{host}:{peer_port}",
                "--log-level=warn",
            ],
            etcd_log,
        )
        stack.callback(etcd.stop)  # stopped after the API server (ExitStack unwinds in reverse)
        _wait_until(
            lambda: _get(host, etcd_port, "/health", context=None) == 200,
            [etcd],
            "etcd",
            startup_timeout,
            logs,
        )

        command = [
            str(found.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            f"--bind-address={host}",
            f"--advertise-address={host}",
            f"--secure-port={api_port}",
            f"--cert-dir={workdir}",
            f"--tls-cert-file={workdir / 'server.crt'}",
            f"--tls-private-key-file={workdir / 'server.key'}",
            f"--client-ca-file={workdir / 'ca.crt'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={workdir / 'sa.pub'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            f"--enable-admission-plugins={','.join(admission_plugins)}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
        if version < INSECURE_PORT_FLAG_UNTIL:
            command.append("--insecure-port=0")
        api = _Child("kube-apiserver", [*command, *extra_args], api_log)
        stack.callback(api.stop)

        context = ssl.create_default_context(cafile=str(workdir / "ca.crt"))
        admin_token = identities[ADMIN][0]
        _wait_until(
            lambda: _get(host, api_port, "/readyz", context=context, token=admin_token) == 200,
            [etcd, api],
            "kube-apiserver /readyz",
            startup_timeout,
            logs,
        )
        yield RealApiServer(
            url=f"https://{host}:{api_port}",
            ca_file=workdir / "ca.crt",
            admin_token=admin_token,
            workdir=workdir,
            version=version,
            etcd_url=etcd_url,
            started_in=time.monotonic() - started,
            tokens={name: token for name, (token, _groups) in identities.items()},
        )


# The controllers a test may ask for and what they do here: quota usage (ResourceQuota admission
# refuses every pod of a namespace whose quota has no status yet) and pods from Deployments.
DEFAULT_CONTROLLERS = ("resourcequota", "deployment", "replicaset")


@contextmanager
def controller_manager(
    server: RealApiServer,
    controllers: Sequence[str] = DEFAULT_CONTROLLERS,
    *,
    assets: Assets | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[Path]:
    """kube-controller-manager for ``server``, running only ``controllers``, as admin; yields its log.

    Raises :class:`AssetsNotFoundError` when the assets have no kube-controller-manager."""
    found = assets or find_assets()
    if found.kube_controller_manager is None:
        raise AssetsNotFoundError(
            f"no kube-controller-manager in {found.directory} (scripts/kube_apiserver_assets.sh builds one)"
        )
    host = "127.0.0.1"
    port = free_port(host)
    cert_dir = server.workdir / "controller-manager"
    cert_dir.mkdir(exist_ok=True)
    log = server.workdir / "kube-controller-manager.log"
    child = _Child(
        "kube-controller-manager",
        [
            str(found.kube_controller_manager),
            f"--kubeconfig={server.kubeconfig(ADMIN)}",
            f"--authentication-kubeconfig={server.kubeconfig(ADMIN)}",
            f"--authorization-kubeconfig={server.kubeconfig(ADMIN)}",
            f"--controllers={','.join(controllers)}",
            "--leader-elect=false",
            f"--bind-address={host}",
            f"--secure-port={port}",
            "--port=0",
            f"--cert-dir={cert_dir}",
            f"--root-ca-file={server.ca_file}",
            f"--service-account-private-key-file={server.workdir / 'sa.key'}",
            "--v=1",
        ],
        log,
    )
    try:
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE  # its self-signed serving certificate
        _wait_until(
            lambda: _get(host, port, "/healthz", context=insecure) == 200,
            [child],
            "kube-controller-manager /healthz",
            startup_timeout,
            [log],
        )
        yield log
    finally:
        child.stop()
