"""The Kubernetes API's cost per workflow, counted by the API server itself.

A real control plane (:mod:`kube_testbed`: etcd and kube-apiserver, the CRD, the chart's RBAC and
Lease) with the stack on it as the chart runs it (the operator, the gateway and synthetic workers as
processes of their own, each authenticated as its ServiceAccount). The server's
``apiserver_request_total`` (:mod:`kube_testbed.request_counts`) is read before and after each of
three windows:

* idle: nothing submitted, ``idle_seconds`` long: what goes on anyway (the operator's Lease, the API
  server's own loops), per second;
* the batch: ``workflows`` synchronous ``POST /v1/workflows`` (``indextts.generate_speech``) from
  ``clients`` concurrent clients, every answer a success, then until the counts on workflows and
  Events stop moving: requests, writes and reads per workflow, and by route;
* deletion: ``DELETE /v1/workflows/{id}`` of each, until those counts stop moving again.

Nothing else talks to the server in a window: the harness's own reads (``/metrics``, and the check
that the workflows are gone) are non-resource requests or come after the window's last snapshot.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import yaml

from kube_testbed.apiserver import REPO, AssetsNotFoundError, RealApiServer, find_assets, real_api_server
from kube_testbed.request_counts import RequestCounts, cost, settle, snapshot
from kube_testbed.stack import Stack, apply_chart_rbac, running_stack

CRD_FILE = REPO / "crds" / "ttsworkflows.tts.indextts.io.yaml"
PREFIX = "k8s_api"
DELETION_PREFIX = "k8s_api_deletion"
TEXT = "你好，这是一个测试。"
# Routes always reported (0 when none was counted), whatever else a run shows.
BATCH_ROUTES = ("create_ttsworkflows", "patch_ttsworkflows", "patch_ttsworkflows_status", "create_events")
DELETION_ROUTES = ("delete_ttsworkflows", "patch_ttsworkflows")
BATCH_SECONDS = 300.0


class NoApiServerError(RuntimeError):
    """The part cannot run: no etcd and kube-apiserver binaries on this machine."""


def request_body(index: int) -> dict[str, object]:
    return {
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": TEXT,
                "output_path": f"/share/workflows/output/bench/k8s-{index}-{uuid.uuid4().hex[:8]}.wav",
            },
        }
    }


def submit_batch(stack: Stack, workflows: int, clients: int) -> list[str]:
    """``workflows`` synchronous requests from ``clients`` threads (one connection each); their ids,
    every one a success (else :class:`RuntimeError`)."""
    gateway = stack.gateway
    if gateway is None:
        raise RuntimeError("the stack has no gateway")
    deadline = time.monotonic() + BATCH_SECONDS

    def post(index: int) -> str:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the batch of {workflows} took over {BATCH_SECONDS} s")
        with httpx.Client(base_url=gateway.url, timeout=120) as http:
            answer = http.post("/v1/workflows", json=request_body(index))
        body = answer.json() if answer.headers.get("content-type", "").startswith("application/json") else {}
        if answer.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"workflow {index}: HTTP {answer.status_code} {answer.text[:300]}")
        return str(body["workflow_id"])

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(post, range(workflows)))


def delete_batch(stack: Stack, ids: list[str], clients: int) -> None:
    with stack.client() as http, ThreadPoolExecutor(max_workers=clients) as pool:
        for answer in pool.map(lambda workflow_id: http.delete(f"/v1/workflows/{workflow_id}"), ids):
            if answer.status_code != 200:
                raise RuntimeError(f"DELETE answered HTTP {answer.status_code}: {answer.text[:300]}")


def all_gone(stack: Stack, ids: list[str]) -> None:
    """Every workflow of ``ids`` gone (the gateway answers 404), else :class:`RuntimeError`."""
    with stack.client() as http:
        left = [i for i in ids if http.get(f"/v1/workflows/status/{i}").status_code != 404]
    if left:
        raise RuntimeError(f"{len(left)} workflows still there after their deletion settled: {left[:5]}")


def window(server: RealApiServer, act: Callable[[], None]) -> tuple[RequestCounts, float]:
    """The requests counted while ``act`` runs and until the workflows' routes stop moving, and the
    window's length in seconds."""
    before = snapshot(server)
    began = time.monotonic()
    act()
    after = settle(server)
    return after.minus(before), time.monotonic() - began


@contextmanager
def control_plane(workers: int, worker_slots: int) -> Iterator[Stack]:
    """The real API server with the CRD and the chart's RBAC, and the stack on it."""
    try:
        assets = find_assets()
    except AssetsNotFoundError as exc:
        raise NoApiServerError(
            f"the control-plane part needs a real Kubernetes API server and found none: {exc}"
        ) from exc
    with real_api_server(assets=assets) as server:
        server.install_crd(yaml.safe_load(CRD_FILE.read_text()))
        apply_chart_rbac(server)
        with running_stack(server, workers=workers, worker_slots=worker_slots) as stack:
            yield stack


def measure(
    *,
    workflows: int = 100,
    clients: int = 8,
    workers: int = 2,
    worker_slots: int = 4,
    idle_seconds: float = 5.0,
    warmup: int = 2,
) -> dict[str, float]:
    """The figures (``k8s_api_*``, ``k8s_workflows_per_s``); :class:`NoApiServerError` without
    binaries."""
    with control_plane(workers, worker_slots) as stack:
        server = stack.api
        # The first workflows pay for connections and caches: run and delete them outside the windows.
        warm = submit_batch(stack, warmup, 1)
        delete_batch(stack, warm, 1)
        settle(server)

        idle, idle_window = window(server, lambda: time.sleep(idle_seconds))
        ids: list[str] = []
        elapsed: list[float] = []

        def batch() -> None:
            began = time.monotonic()
            ids.extend(submit_batch(stack, workflows, clients))
            elapsed.append(time.monotonic() - began)

        done, _ = window(server, batch)
        deleted, _ = window(server, lambda: delete_batch(stack, ids, clients))
        all_gone(stack, ids)

    ran, removed, quiet = cost(done, workflows), cost(deleted, workflows), cost(idle, 1)
    figures = {f"{PREFIX}_{route}_per_workflow": 0.0 for route in BATCH_ROUTES}
    figures.update({f"{DELETION_PREFIX}_{route}_per_workflow": 0.0 for route in DELETION_ROUTES})
    figures.update(ran.figures(PREFIX))
    figures.update(removed.figures(DELETION_PREFIX))
    figures.update(
        {
            "k8s_api_workflows": float(workflows),
            "k8s_api_idle_requests_per_s": quiet.requests / idle_window,
            "k8s_api_idle_writes_per_s": quiet.writes / idle_window,
            "k8s_workflows_per_s": workflows / elapsed[0],
        }
    )
    print(
        f"   the batch, by route (count, per workflow):\n{ran.table()}\n"
        f"   their deletion:\n{removed.table()}\n"
        f"   idle, {idle_window:.1f} s: " + ", ".join(f"{label} {n}" for label, n in quiet.by_label.items()),
        file=sys.stderr,
        flush=True,
    )
    return figures
