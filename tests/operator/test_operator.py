"""The real kopf operator against kmock and against a real API server (KUBECONFIG's cluster when it
is set, else the suite's own kube-apiserver), with a real nats-server and the stub worker. The
scenarios themselves are in scenarios.py."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator

import pytest

from kube_testbed.apiserver import RealApiServer
from tests.operator.cluster import Cluster, crd_installed, emulated_api_server, ensure_namespace
from tests.operator.scenarios import SCENARIOS

Scenario = Callable[[Cluster, str], Awaitable[None]]


@pytest.fixture(params=["kmock", "real-api-server"])
def cluster(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    if request.param == "kmock":
        with emulated_api_server() as url:
            yield Cluster(url, "default", emulated=True)
        return
    if not os.environ.get("KUBECONFIG"):
        # The suite's own kube-apiserver, as its admin, with the CRD installed.
        server: RealApiServer = request.getfixturevalue("kube_api")
        request.getfixturevalue("kube_crd")
        monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig()))
    if not crd_installed(""):
        pytest.skip("the TTSWorkflow CRD is not installed: kubectl apply -f crds/")
    # A namespace of its own, which no operator installed in the cluster watches: the operator under
    # test runs in this process (with its own nats-server), as it does against kmock.
    namespace = os.environ.get("TTS_OPERATOR_TEST_NAMESPACE", "tts-operator-test")
    ensure_namespace(namespace)
    yield Cluster("", namespace, emulated=False)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
async def test_scenario(scenario: Scenario, cluster: Cluster, nats_url: str) -> None:
    await scenario(cluster, nats_url)
