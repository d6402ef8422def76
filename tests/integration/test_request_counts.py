"""Reading the API server's request counts (:mod:`kube_testbed.request_counts`) from a real
``/metrics``: two snapshots of a kube-apiserver v1.20.2 with the stack on it, before and after two
synchronous workflows through the gateway, trimmed to a few routes of each counter (and a gauge whose
value is infinite, as the server writes one)."""

from __future__ import annotations

import pytest

from kube_testbed.request_counts import RequestCounts, Route, cost, parse

BEFORE = """\
# HELP apiserver_request_total [ALPHA] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response contentType and code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="0",component="",contentType="text/plain;charset=utf-8",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 27
apiserver_request_total{code="200",component="",contentType="text/plain;charset=utf-8",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 2
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="GET",version="v1"} 6
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PATCH",version="v1"} 6
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 2
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="cluster",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="resourcequotas",scope="cluster",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="resourcequotas",scope="namespace",subresource="",verb="LIST",version="v1"} 5
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="404",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="GET",version="v1"} 2
apiserver_request_total{code="422",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="POST",version="v1"} 2
# HELP apiserver_selfrequest_total [ALPHA] Counter of apiserver self-requests broken out for each verb, API resource and subresource.
# TYPE apiserver_selfrequest_total counter
apiserver_selfrequest_total{resource="",subresource="/readyz",verb="GET"} 15
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="GET"} 2
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="LIST"} 1
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="POST"} 2
apiserver_selfrequest_total{resource="resourcequotas",subresource="",verb="LIST"} 6
# HELP apiserver_flowcontrol_dispatched_requests_total [ALPHA] Number of requests released by API Priority and Fairness system for service
# TYPE apiserver_flowcontrol_dispatched_requests_total counter
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 441
apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts",priority_level="workload-low"} 23
# HELP rest_client_exec_plugin_ttl_seconds [ALPHA] Gauge of the shortest TTL (time-to-live) of the client certificate(s) managed by the auth exec plugin. The value is in seconds until certificate expiry (negative if already expired). If auth exec plugins are unused or manage no TLS certificates, the value will be +INF.
# TYPE rest_client_exec_plugin_ttl_seconds gauge
rest_client_exec_plugin_ttl_seconds +Inf
"""  # noqa: E501

AFTER = """\
# HELP apiserver_request_total [ALPHA] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response contentType and code.
# TYPE apiserver_request_total counter
apiserver_request_total{code="0",component="",contentType="text/plain;charset=utf-8",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 27
apiserver_request_total{code="0",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="",verb="WATCH",version="v1alpha1"} 2
apiserver_request_total{code="200",component="",contentType="text/plain;charset=utf-8",dry_run="",group="",resource="",scope="",subresource="/readyz",verb="GET",version=""} 2
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="GET",version="v1"} 8
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PATCH",version="v1"} 8
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="",verb="LIST",version="v1alpha1"} 4
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="",verb="PATCH",version="v1alpha1"} 4
apiserver_request_total{code="200",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="status",verb="PATCH",version="v1alpha1"} 6
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="cluster",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="resourcequotas",scope="cluster",subresource="",verb="LIST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="resourcequotas",scope="namespace",subresource="",verb="LIST",version="v1"} 6
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 8
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="",resource="serviceaccounts",scope="resource",subresource="token",verb="POST",version="v1"} 2
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="201",component="apiserver",contentType="application/json",dry_run="",group="tts.indextts.io",resource="ttsworkflows",scope="namespace",subresource="",verb="POST",version="v1alpha1"} 2
apiserver_request_total{code="404",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="GET",version="v1"} 2
apiserver_request_total{code="422",component="apiserver",contentType="application/vnd.kubernetes.protobuf",dry_run="",group="",resource="endpoints",scope="resource",subresource="",verb="POST",version="v1"} 2
# HELP apiserver_selfrequest_total [ALPHA] Counter of apiserver self-requests broken out for each verb, API resource and subresource.
# TYPE apiserver_selfrequest_total counter
apiserver_selfrequest_total{resource="",subresource="/readyz",verb="GET"} 15
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="GET"} 2
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="LIST"} 1
apiserver_selfrequest_total{resource="endpoints",subresource="",verb="POST"} 2
apiserver_selfrequest_total{resource="resourcequotas",subresource="",verb="LIST"} 7
# HELP apiserver_flowcontrol_dispatched_requests_total [ALPHA] Number of requests released by API Priority and Fairness system for service
# TYPE apiserver_flowcontrol_dispatched_requests_total counter
apiserver_flowcontrol_dispatched_requests_total{flow_schema="exempt",priority_level="exempt"} 447
apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts",priority_level="workload-low"} 49
# HELP rest_client_exec_plugin_ttl_seconds [ALPHA] Gauge of the shortest TTL (time-to-live) of the client certificate(s) managed by the auth exec plugin. The value is in seconds until certificate expiry (negative if already expired). If auth exec plugins are unused or manage no TLS certificates, the value will be +INF.
# TYPE rest_client_exec_plugin_ttl_seconds gauge
rest_client_exec_plugin_ttl_seconds +Inf
"""  # noqa: E501

TTS = "tts.indextts.io"
LEASES = "coordination.k8s.io"


def test_a_snapshot_counts_served_requests_by_verb_group_resource_subresource_and_code() -> None:
    counts = parse(AFTER)
    assert counts.counts[Route("POST", TTS, "ttsworkflows", "", "201")] == 2
    assert counts.counts[Route("PATCH", TTS, "ttsworkflows", "status", "200")] == 6
    assert counts.counts[Route("WATCH", TTS, "ttsworkflows", "", "0")] == 2
    assert counts.counts[Route("POST", "", "events", "", "201")] == 8
    # One route over two scopes (cluster and namespace) and content types: summed.
    assert counts.counts[Route("LIST", "", "resourcequotas", "", "200")] == 7
    # A non-resource request keeps its path as the subresource, and is no resource request.
    readyz = Route("GET", "", "", "/readyz", "200")
    assert counts.counts[readyz] == 2
    assert readyz not in counts.resource_requests().counts
    # The server's own requests (no group, no code) and the dispatches by flow schema.
    assert counts.own[Route("LIST", "", "resourcequotas", "", "")] == 7
    assert counts.dispatched == {"exempt": 447, "service-accounts": 49}


def test_a_difference_is_what_was_counted_between_two_snapshots() -> None:
    window = parse(AFTER).minus(parse(BEFORE))
    assert window.by_label() == {
        "create events": 8,
        "create ttsworkflows.tts.indextts.io": 2,
        "get leases.coordination.k8s.io": 2,
        "list resourcequotas": 1,
        "list ttsworkflows.tts.indextts.io": 2,
        "patch leases.coordination.k8s.io": 2,
        "patch ttsworkflows.tts.indextts.io": 4,
        "patch ttsworkflows.tts.indextts.io/status": 6,
        "watch ttsworkflows.tts.indextts.io": 2,
    }
    assert window.own == {Route("LIST", "", "resourcequotas", "", ""): 1}
    assert window.dispatched == {"exempt": 6, "service-accounts": 26}
    assert Route("POST", "", "serviceaccounts", "token", "201") not in window.counts, "unchanged: no entry"


def test_a_counter_that_fell_means_another_server() -> None:
    with pytest.raises(ValueError, match="fell between the snapshots"):
        parse(BEFORE).minus(parse(AFTER))


def test_the_clients_requests_are_the_served_ones_less_the_servers_own() -> None:
    window = parse(AFTER).minus(parse(BEFORE))
    assert "list resourcequotas" not in window.clients().by_label()
    # The server's own count has no code: it is taken from the served route's lowest codes first.
    served = RequestCounts(
        {Route("POST", "", "endpoints", "", "201"): 1, Route("POST", "", "endpoints", "", "422"): 2},
        own={Route("POST", "", "endpoints", "", ""): 2},
    )
    assert served.clients().counts == {Route("POST", "", "endpoints", "", "422"): 1}


def test_the_cost_of_two_workflows_per_workflow_by_route() -> None:
    figures = cost(parse(AFTER).minus(parse(BEFORE)), workflows=2)
    # Writes: 2 creates, 4 patches, 6 status patches, 8 Events of the workflows, 2 Lease patches.
    assert figures.writes == 22
    assert figures.reads == 6  # 2 gets of the workflows (counted as LIST), 2 watches, 2 Lease gets
    assert figures.requests == 28
    assert figures.writes_per_workflow == 11.0
    assert figures.requests_per_workflow == 14.0
    assert figures.server_own == 1
    assert figures.per_workflow()["patch ttsworkflows.tts.indextts.io/status"] == 3.0
    assert set(figures.writes_by_label) == {
        "create events",
        "create ttsworkflows.tts.indextts.io",
        "patch leases.coordination.k8s.io",
        "patch ttsworkflows.tts.indextts.io",
        "patch ttsworkflows.tts.indextts.io/status",
    }
    # Every request of the ServiceAccounts that is no watch was served: none refused.
    assert figures.service_account_requests == figures.unwatched_requests == 26
    assert not figures.refused
    assert not figures.unsuccessful, "a watch its client closed (code 0) is no failure"
    flat = figures.figures("k8s_api")
    assert flat["k8s_api_writes_per_workflow"] == 11.0
    assert flat["k8s_api_create_ttsworkflows_per_workflow"] == 1.0
    assert flat["k8s_api_patch_ttsworkflows_status_per_workflow"] == 3.0
    assert flat["k8s_api_create_events_per_workflow"] == 4.0
    assert flat["k8s_api_refused"] == 0.0
    print(f"\n{figures.table()}")


def test_refusals_and_failures_are_reported_by_route_and_code() -> None:
    window = RequestCounts(
        {
            Route("PATCH", TTS, "ttsworkflows", "status", "200"): 3,
            Route("PATCH", TTS, "ttsworkflows", "status", "409"): 1,
            Route("DELETE", TTS, "ttsworkflows", "", "403"): 2,
            Route("WATCH", TTS, "ttsworkflows", "", "0"): 5,
        }
    )
    figures = cost(window, workflows=1)
    assert figures.refused == {"delete ttsworkflows.tts.indextts.io (403)": 2}
    assert figures.unsuccessful == {
        "delete ttsworkflows.tts.indextts.io (403)": 2,
        "patch ttsworkflows.tts.indextts.io/status (409)": 1,
    }
    assert window.by_code() == {"0": 5, "200": 3, "403": 2, "409": 1}


def test_a_cost_needs_a_workflow() -> None:
    with pytest.raises(ValueError, match="at least one workflow"):
        cost(RequestCounts(), workflows=0)
