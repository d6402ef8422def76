"""KubernetesStore against kmock: the operator's only calls to the Kubernetes API for workflows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.operator.cluster import Cluster, emulated_api_server
from tests.operator.scenarios import speech_spec
from tts_api.messages import WorkflowRef
from tts_operator.store import KubernetesStore, WorkflowGoneError, workflow_uid


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with emulated_api_server() as url:
        yield Cluster(url, "default", emulated=True)


async def test_get_list_patch_delete_and_events(cluster: Cluster) -> None:
    store = KubernetesStore.connect(cluster.api_url)
    await cluster.create("one", speech_spec())
    workflow = await store.get("default", "one")
    assert workflow is not None
    assert workflow.ref == WorkflowRef(
        uid=workflow_uid({"namespace": "default", "name": "one"}), name="one", namespace="default"
    )
    assert workflow.spec["workflowConfig"]["workflowChain"] == ["indextts.generate_speech"]
    assert [w.ref.name for w in await store.list()] == ["one"]

    await store.patch_status(
        workflow.ref, {"phase": "Queued", "stages": [{"name": "indextts.generate_speech"}]}
    )
    await store.patch_status(workflow.ref, {"phase": "Running", "error": None})
    fetched = await store.get("default", "one")
    assert fetched is not None
    assert fetched.status.phase == "Running"
    assert [s.name.value for s in fetched.status.stages] == ["indextts.generate_speech"]

    await store.post_event(workflow.ref, "Normal", "Accepted", "accepted")
    await store.post_event(workflow.ref, "Warning", "Retrying", "again")
    assert await cluster.event_reasons("one") == ["Accepted", "Retrying"]

    await store.delete(workflow.ref)
    assert await store.get("default", "one") is None
    await store.delete(workflow.ref)  # already gone: no error
    with pytest.raises(WorkflowGoneError):
        await store.patch_status(workflow.ref, {"phase": "Failed"})


async def test_list_is_limited_to_the_watched_namespaces(cluster: Cluster) -> None:
    await cluster.create("here", speech_spec())
    other = Cluster(cluster.api_url, "elsewhere", emulated=True)
    await other.create("there", speech_spec())
    assert sorted(w.ref.name for w in await KubernetesStore.connect(cluster.api_url).list()) == [
        "here",
        "there",
    ]
    only = KubernetesStore.connect(cluster.api_url, ["elsewhere"])
    assert [w.ref.name for w in await only.list()] == ["there"]


def test_a_real_uid_is_kept_and_a_missing_one_is_stable() -> None:
    assert workflow_uid({"uid": "abc", "name": "x"}) == "abc"
    stand_in = workflow_uid({"namespace": "ns", "name": "x"})
    assert stand_in == workflow_uid({"namespace": "ns", "name": "x"})
    assert stand_in != workflow_uid({"namespace": "ns", "name": "y"})
    assert "." not in stand_in  # usable as a NATS subject token
