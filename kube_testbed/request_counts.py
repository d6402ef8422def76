"""What the Kubernetes API server counted of the requests it served, read from its own ``/metrics``.

Three of its counters, as a real v1.20.2 server writes them:

* ``apiserver_request_total``: every request served, by ``verb``, ``group``, ``version``,
  ``resource``, ``subresource``, ``scope``, ``component``, ``contentType``, ``dry_run`` and ``code``
  (kept here: verb, group, resource, subresource, code);
* ``apiserver_selfrequest_total``: those the server made to itself (its loopback client: the
  endpoints of the ``kubernetes`` Service every 10 s, ResourceQuota admission's lists), by ``verb``,
  ``resource`` and ``subresource`` only;
* ``apiserver_flowcontrol_dispatched_requests_total``: requests let through by API Priority and
  Fairness, by ``flow_schema``: ``service-accounts`` for the stack's components (each is a
  ServiceAccount), ``exempt`` for ``system:masters`` (the admin, and the server itself). Counted at
  dispatch, before authorization, and long-running requests (watches) bypass it.

No label names the client (no user, no user agent): the clients' requests are what was served less
what the server asked of itself (:meth:`RequestCounts.clients`), and a window in which only the stack
runs attributes them to it; the flow schemas tell the ServiceAccounts' share.

The verbs are the server's, upper case: ``POST`` (create), ``PUT`` (update), ``PATCH``, ``APPLY``
(a server-side apply patch), ``DELETE``, ``DELETECOLLECTION`` write; ``GET``, ``LIST``, ``WATCH`` read
(``CONNECT`` neither). What 1.20 does that one must know to read the figures:

* a ``WATCH`` is counted when it ends, not when it opens (code ``0`` when its client closed it);
* a custom resource's GET of one object is counted as ``LIST`` (scope ``namespace``): the figures of
  ``ttsworkflows`` merge gets and lists;
* a request refused by authorization (403) or authentication (401) is not in
  ``apiserver_request_total`` at all (the filters answer before the counting handler); a refused
  request of a ServiceAccount still shows as a ``service-accounts`` dispatch that no served request
  matches (:attr:`Cost.service_account_requests` against the clients' requests that are no watch).

Resource requests only. A non-resource request (``resource`` empty: ``/readyz``, discovery,
``/metrics`` itself on servers that count it; 1.20 puts the path in ``subresource`` and counts only
the health checks) is kept in a snapshot but left out of every figure of a :class:`Cost`: the reads
of ``/metrics`` that take the snapshots, and the harness's readiness checks, must not weigh on the
stack's figures (they are ``exempt`` dispatches, which no figure reports either). Whoever takes the
snapshots makes no resource request of their own between them.

Decisions apart from I/O: :func:`parse`, :meth:`RequestCounts.minus`, :meth:`RequestCounts.clients`
and :func:`cost` are pure; :func:`metrics_text` does the one HTTP GET (:func:`snapshot` and
:func:`settle` call it).
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kube_testbed.apiserver import RealApiServer

SERVED = "apiserver_request_total"
OWN = "apiserver_selfrequest_total"
DISPATCHED = "apiserver_flowcontrol_dispatched_requests_total"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
READ_VERBS = frozenset({"GET", "LIST", "WATCH"})
# The server's verbs as RBAC and kubectl name them, for the figures' names.
VERB_NAMES = {"POST": "create", "PUT": "update", "DELETECOLLECTION": "deletecollection"}
REFUSED_CODES = frozenset({"401", "403"})
SERVICE_ACCOUNTS_FLOW = "service-accounts"
# What a workflow's own requests touch: its object (and status) and the Events about it. The operator's
# Lease (leader election) and the server's own loops go on at their own pace, workflows or none.
WORKFLOW_RESOURCES = ("ttsworkflows", "events")


@dataclass(frozen=True, order=True)
class Route:
    """What a request did: its verb on a resource (and subresource) of an API group, and the answer's
    HTTP code (``0`` where the server wrote none). A request the server made to itself is counted
    without group and code: those fields are empty on its routes."""

    verb: str
    group: str
    resource: str
    subresource: str = ""
    code: str = "200"

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)

    @property
    def is_write(self) -> bool:
        return self.verb in WRITE_VERBS

    @property
    def is_read(self) -> bool:
        return self.verb in READ_VERBS

    @property
    def closed_by_client(self) -> bool:
        """A watch its client ended (code 0: no answer written), as the gateway's once it has seen
        the state it waited for: not a failure."""
        return self.verb == "WATCH" and self.code == "0"

    @property
    def refused(self) -> bool:
        return self.code in REFUSED_CODES

    @property
    def label(self) -> str:
        """``verb resource[.group][/subresource]`` as kubectl names them: ``patch
        ttsworkflows.tts.indextts.io/status``, ``create events``, ``patch leases.coordination.k8s.io``."""
        verb = VERB_NAMES.get(self.verb, self.verb.lower())
        name = f"{self.resource}.{self.group}" if self.group else self.resource
        return f"{verb} {name}/{self.subresource}" if self.subresource else f"{verb} {name}"

    @property
    def slug(self) -> str:
        """The label without the group, for a figure's key: ``patch_ttsworkflows_status``."""
        verb = VERB_NAMES.get(self.verb, self.verb.lower())
        return re.sub(r"[^a-z0-9]+", "_", f"{verb} {self.resource} {self.subresource}".lower()).strip("_")

    @property
    def action(self) -> tuple[str, str, str]:
        """What the server's own count keeps of a route: verb, resource, subresource."""
        return self.verb, self.resource, self.subresource


K = TypeVar("K", Route, str)


def _frozen(counts: Mapping[K, int]) -> Mapping[K, int]:
    kept: dict[K, int] = {key: count for key, count in counts.items() if count}
    return MappingProxyType(dict(sorted(kept.items())))


def _less(after: Mapping[K, int], before: Mapping[K, int], what: str) -> dict[K, int]:
    fell = [key for key, count in before.items() if after.get(key, 0) < count]
    if fell:
        raise ValueError(f"{what} fell between the snapshots (a restarted server?): {fell[:5]}")
    return {key: count - before.get(key, 0) for key, count in after.items()}


def _summed(counts: Mapping[K, int], key: Callable[[K], str]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for item, count in counts.items():
        merged[key(item)] = merged.get(key(item), 0) + count
    return dict(sorted(merged.items()))


@dataclass(frozen=True)
class RequestCounts:
    """The three counters by route (flow schema for dispatches): their values (a snapshot) or their
    growth (a difference of snapshots, :meth:`minus`)."""

    counts: Mapping[Route, int] = field(default_factory=dict)
    own: Mapping[Route, int] = field(default_factory=dict)
    dispatched: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "counts", _frozen(self.counts))
        object.__setattr__(self, "own", _frozen(self.own))
        object.__setattr__(self, "dispatched", _frozen(self.dispatched))

    def minus(self, before: RequestCounts) -> RequestCounts:
        """What was counted after ``before`` up to this snapshot (``after.minus(before)``). A counter
        only grows: one that fell means another server (or a restart) in between, a
        :class:`ValueError`."""
        return RequestCounts(
            _less(self.counts, before.counts, "served requests"),
            _less(self.own, before.own, "the server's own requests"),
            _less(self.dispatched, before.dispatched, "dispatched requests"),
        )

    def clients(self) -> RequestCounts:
        """The requests served to clients: those served less those the server made to itself. The
        server's own count has no group and no code: each is taken from the served routes of its verb,
        resource and subresource, in the routes' order (so from the lowest code first)."""
        left = dict(self.counts)
        for own, count in self.own.items():
            for route in [r for r in left if r.action == own.action]:
                taken = min(count, left[route])
                left[route] -= taken
                count -= taken
        return RequestCounts(left, {}, self.dispatched)

    def where(self, **labels: str) -> RequestCounts:
        """The served routes whose fields equal ``labels`` (``verb="POST", resource="ttsworkflows"``)."""
        return RequestCounts(
            {
                route: count
                for route, count in self.counts.items()
                if all(getattr(route, name) == value for name, value in labels.items())
            }
        )

    def of_resources(self, resources: Iterable[str]) -> RequestCounts:
        """The served routes on any of ``resources`` (plural names: ``ttsworkflows``, ``events``)."""
        names = set(resources)
        return RequestCounts({route: n for route, n in self.counts.items() if route.resource in names})

    def resource_requests(self) -> RequestCounts:
        return RequestCounts({route: n for route, n in self.counts.items() if route.is_resource})

    def total(self) -> int:
        """Served requests, every route together."""
        return sum(self.counts.values())

    def by_label(self) -> dict[str, int]:
        """Served resource requests by :attr:`Route.label`, every answer code together."""
        return _summed(self.resource_requests().counts, lambda route: route.label)

    def by_code(self) -> dict[str, int]:
        """Served resource requests by the HTTP code of the answer."""
        return _summed(self.resource_requests().counts, lambda route: route.code)

    def unsuccessful(self) -> dict[str, int]:
        """Served resource requests answered other than 2xx, as ``label (code)``: conflicts (409),
        requests of what is gone (404), refusals where the server counts them (401, 403), its own
        failures; not the watches that their clients closed."""
        return {
            f"{route.label} ({route.code})": count
            for route, count in self.resource_requests().counts.items()
            if not route.code.startswith("2") and not route.closed_by_client
        }

    def refused(self) -> dict[str, int]:
        """Served resource requests answered 401 or 403, as ``label (code)``."""
        return {
            f"{route.label} ({route.code})": count
            for route, count in self.resource_requests().counts.items()
            if route.refused
        }


def parse(text: str) -> RequestCounts:
    """The three counters of a ``/metrics`` text, summed over the labels that are not kept (version,
    scope, component, content type, dry run; priority level)."""
    served: dict[Route, int] = {}
    own: dict[Route, int] = {}
    dispatched: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # The parser names a counter's family without ``_total``; its samples keep the suffix.
            if sample.name not in (SERVED, OWN, DISPATCHED):
                continue
            labels, count = sample.labels, int(sample.value)
            if sample.name == DISPATCHED:
                schema = labels.get("flow_schema", "")
                dispatched[schema] = dispatched.get(schema, 0) + count
                continue
            route = Route(
                verb=labels.get("verb", "").upper(),
                group=labels.get("group", ""),
                resource=labels.get("resource", ""),
                subresource=labels.get("subresource", ""),
                code=labels.get("code", ""),
            )
            into = served if sample.name == SERVED else own
            into[route] = into.get(route, 0) + count
    return RequestCounts(served, own, dispatched)


@dataclass(frozen=True)
class Cost:
    """The clients' resource requests of a window in which ``workflows`` workflows ran (the server's
    own requests apart), per workflow."""

    workflows: int
    requests: int
    writes: int
    reads: int
    by_label: Mapping[str, int]
    writes_by_label: Mapping[str, int]
    by_slug: Mapping[str, int]
    refused: Mapping[str, int]
    unsuccessful: Mapping[str, int]
    server_own: int  # resource requests the server made to itself meanwhile
    service_account_requests: int  # dispatched for ServiceAccounts (the stack's components), no watch
    unwatched_requests: int  # the clients' requests that are no watch (what APF dispatches)

    @property
    def requests_per_workflow(self) -> float:
        return self.requests / self.workflows

    @property
    def writes_per_workflow(self) -> float:
        return self.writes / self.workflows

    @property
    def reads_per_workflow(self) -> float:
        return self.reads / self.workflows

    def per_workflow(self) -> dict[str, float]:
        """Requests per workflow by :attr:`Route.label`."""
        return {label: count / self.workflows for label, count in self.by_label.items()}

    def figures(self, prefix: str) -> dict[str, float]:
        """Flat figures for a results file: ``{prefix}_requests_per_workflow``,
        ``{prefix}_writes_per_workflow``, ``{prefix}_reads_per_workflow``,
        ``{prefix}_not_2xx_per_workflow``, ``{prefix}_refused`` (401 and 403 answers, a count),
        ``{prefix}_server_own_requests_per_workflow``,
        ``{prefix}_service_account_requests_per_workflow``, and one ``{prefix}_{slug}_per_workflow`` a
        route (``k8s_api_patch_ttsworkflows_status_per_workflow``)."""
        figures = {
            f"{prefix}_requests_per_workflow": self.requests_per_workflow,
            f"{prefix}_writes_per_workflow": self.writes_per_workflow,
            f"{prefix}_reads_per_workflow": self.reads_per_workflow,
            f"{prefix}_not_2xx_per_workflow": sum(self.unsuccessful.values()) / self.workflows,
            f"{prefix}_refused": float(sum(self.refused.values())),
            f"{prefix}_server_own_requests_per_workflow": self.server_own / self.workflows,
            f"{prefix}_service_account_requests_per_workflow": self.service_account_requests / self.workflows,
        }
        for slug, count in self.by_slug.items():
            figures[f"{prefix}_{slug}_per_workflow"] = count / self.workflows
        return figures

    def table(self) -> str:
        """A line of totals, then one line a route: count, per workflow, and whether it writes."""
        width = max((len(label) for label in self.by_label), default=10)
        lines = [
            f"{self.workflows} workflows: {self.requests} requests ({self.requests_per_workflow:.2f} a"
            f" workflow), {self.writes} writes ({self.writes_per_workflow:.2f}),"
            f" {self.reads} reads ({self.reads_per_workflow:.2f});"
            f" besides, the server's own: {self.server_own}",
        ]
        for label, count in self.by_label.items():
            kind = "write" if label in self.writes_by_label else ""
            lines.append(f"  {label:<{width}} {count:>6} {count / self.workflows:>8.2f}  {kind}")
        lines.append(
            f"  dispatched for ServiceAccounts: {self.service_account_requests}"
            f" (served to clients, no watch: {self.unwatched_requests})"
        )
        if self.unsuccessful:
            lines.append(f"  not 2xx: {dict(self.unsuccessful)}")
        return "\n".join(lines)


def cost(window: RequestCounts, workflows: int) -> Cost:
    """The clients' resource requests of ``window`` (a difference of snapshots) over ``workflows``."""
    if workflows <= 0:
        raise ValueError(f"a cost per workflow needs at least one workflow, not {workflows}")
    served = window.clients().resource_requests()
    writes = {route: n for route, n in served.counts.items() if route.is_write}
    reads = {route: n for route, n in served.counts.items() if route.is_read}
    return Cost(
        workflows=workflows,
        requests=served.total(),
        writes=sum(writes.values()),
        reads=sum(reads.values()),
        by_label=MappingProxyType(served.by_label()),
        writes_by_label=MappingProxyType(RequestCounts(writes).by_label()),
        by_slug=MappingProxyType(_summed(served.counts, lambda route: route.slug)),
        refused=MappingProxyType(served.refused()),
        unsuccessful=MappingProxyType(served.unsuccessful()),
        server_own=sum(n for route, n in window.own.items() if route.is_resource),
        service_account_requests=window.dispatched.get(SERVICE_ACCOUNTS_FLOW, 0),
        unwatched_requests=sum(n for route, n in served.counts.items() if route.verb != "WATCH"),
    )


# --- I/O -------------------------------------------------------------------------------------------


def metrics_text(server: RealApiServer, *, timeout: float = 10.0) -> str:
    """The server's ``/metrics``, read as admin (bearer token, verified against the server's CA)."""
    context = ssl.create_default_context(cafile=str(server.ca_file))
    answer = httpx.get(
        f"{server.url}/metrics",
        headers={"Authorization": f"Bearer {server.admin_token}"},
        verify=context,
        timeout=timeout,
    )
    answer.raise_for_status()
    return answer.text


def snapshot(server: RealApiServer) -> RequestCounts:
    """The server's counts now."""
    return parse(metrics_text(server))


def settle(
    server: RealApiServer,
    *,
    resources: Iterable[str] = WORKFLOW_RESOURCES,
    quiet_seconds: float = 2.0,
    timeout: float = 60.0,
    interval: float = 0.25,
) -> RequestCounts:
    """Snapshots until the served counts on ``resources`` have not moved for ``quiet_seconds`` (the
    last writes of a batch, as the operator's Events after a workflow's answer, have landed); the last
    snapshot. :class:`TimeoutError` when they still move after ``timeout``."""
    names = tuple(resources)
    started = time.monotonic()
    last = snapshot(server)
    still_since = time.monotonic()
    while time.monotonic() - still_since < quiet_seconds:
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"requests on {', '.join(names)} still counted after {timeout} s")
        time.sleep(interval)
        now = snapshot(server)
        if now.of_resources(names) != last.of_resources(names):
            still_since = time.monotonic()
        last = now
    return last
