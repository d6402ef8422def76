"""``indextts-k8s operator``: run the operator against the cluster, as ``kopf run`` would."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from tts_operator.leader import LeaderElector

HELP = "Run the operator: reconcile TTSWorkflows and dispatch their stages to inference pods over NATS."


def configure(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        metavar="NAMESPACE",
        help="Watch this namespace (repeatable); default: TTS_OPERATOR_NAMESPACES, else all namespaces.",
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="Watch every namespace (the default)."
    )
    parser.add_argument(
        "--standalone",
        action="store_true",
        help="Skip leader election: for a single replica (TTS_OPERATOR_LEADER_ELECTION=false does the same).",
    )
    parser.add_argument("--verbose", action="store_true", help="Log at debug level.")
    parser.add_argument(
        "--log-format", choices=["plain", "json"], default="plain", help="Log lines as text or as JSON."
    )


def run(args: argparse.Namespace) -> int:
    import kopf
    import prometheus_client

    from kube_access.client import api_client
    from tts_api.policy import policy_from_env
    from tts_operator.handlers import register
    from tts_operator.leader import LeaderElector
    from tts_operator.settings import Settings

    # The environment is read here, once: the handlers and the reconcile core are given what they need.
    settings = Settings()
    policy = policy_from_env()
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    if not args.verbose:
        # kopf logs every timer run at INFO; its warnings and errors still show.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    log = logging.getLogger("tts_operator")
    namespaces = [] if args.all_namespaces else (args.namespaces or settings.namespace_list())

    lost = False

    def on_lost() -> None:
        nonlocal lost
        lost = True
        os.kill(os.getpid(), signal.SIGTERM)  # kopf stops gracefully; the pod restarts as a standby

    elector = None
    if settings.leader_election and not args.standalone:
        try:
            elector = LeaderElector(
                api_client(settings.kube_api_url),
                name=settings.lease_name,
                namespace=settings.lease_namespace or os.environ.get("POD_NAMESPACE") or "default",
                identity=os.environ.get("POD_NAME") or socket.gethostname(),
                duration=settings.lease_duration_seconds,
                renew_every=settings.lease_renew_seconds,
                on_lost=on_lost,  # called in the election's thread: a signal is safe from there
            )
        except ValueError as exc:
            log.error("%s", exc)
            return 2
    registry = kopf.OperatorRegistry()  # handlers.register adds the logins too
    register(registry, settings, policy=policy, elector=elector)
    if settings.metrics_port:
        prometheus_client.start_http_server(settings.metrics_port)
    log.info(
        "operator starting: %s, NATS %s, %s",
        ", ".join(namespaces) if namespaces else "all namespaces",
        settings.nats_url,
        "leader election" if elector else "standalone",
    )
    if elector is not None and not _wait_for_the_lease(elector, settings.liveness_endpoint):
        return 0  # stopped while standing by
    kopf.run(
        registry=registry,
        standalone=True,  # kopf's peering is off: the Lease decides who reconciles (docs/operator.md)
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=settings.liveness_endpoint or None,
        memo=kopf.Memo(),
    )
    return 1 if lost else 0


def _wait_for_the_lease(elector: LeaderElector, liveness_endpoint: str) -> bool:
    """Stand by until this replica holds the Lease (True), or until SIGTERM/SIGINT (False).

    A standby starts no kopf at all (no watches, no load on the API server); it answers the liveness
    endpoint itself meanwhile, so that its pod is not restarted for waiting.
    """
    import asyncio

    server = _standby_liveness(liveness_endpoint)
    try:

        async def wait() -> bool:
            loop = asyncio.get_running_loop()
            acquired = asyncio.ensure_future(elector.acquire())
            stop = asyncio.Event()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([acquired, stopped], return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            if not acquired.done():
                acquired.cancel()
                await elector.release()  # ends its part (and gives the Lease up, had it just won it)
                return False
            acquired.result()  # raises if the election ended without this replica leading
            return True

        return asyncio.run(wait())
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _standby_liveness(endpoint: str) -> ThreadingHTTPServer | None:
    if not endpoint:
        return None
    url = urlparse(endpoint)
    path = url.path or "/"

    class Alive(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path.split("?")[0] == path
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(b"standing by for the Lease\n" if found else b"")

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Alive)  # noqa: S104
    threading.Thread(target=server.serve_forever, name="standby-liveness", daemon=True).start()
    return server
