"""The GPU lock: a ResourceQuota on requests.nvidia.com/gpu, and inference pods that count against it."""

from __future__ import annotations

import pytest

from kube_testbed.helm import CPU_VALUES, Helm, HelmError, by_kind, component, env_of, named


def inference_container(helm: Helm, *set_values: str, cpu: bool = False) -> dict[str, object]:
    docs = helm.template(values=[CPU_VALUES] if cpu else [], set_values=set_values)
    deployment = named(docs, "Deployment", component("inference"))
    container: dict[str, object] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


@pytest.mark.parametrize(
    ("set_values", "hard"),
    [
        ((), "1"),
        (("gpuQuota.gpus=2",), "2"),
        (("gpuQuota.gpus=8", "inference.replicas=8"), "8"),
    ],
)
def test_the_quota_grants_the_configured_gpus(helm: Helm, set_values: tuple[str, ...], hard: str) -> None:
    (quota,) = by_kind(helm.template(set_values=set_values), "ResourceQuota")
    assert quota["metadata"]["name"] == component("gpu-quota")
    assert quota["metadata"]["namespace"] == "speech"
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": hard}


def test_each_inference_pod_requests_and_limits_one_gpu_by_default(helm: Helm) -> None:
    resources = inference_container(helm)["resources"]
    assert isinstance(resources, dict)
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert resources["limits"]["nvidia.com/gpu"] == 1, "extended resources: requests equal limits"


def test_the_gpu_count_per_pod_is_configurable(helm: Helm) -> None:
    resources = inference_container(helm, "inference.gpus=2", "gpuQuota.gpus=4")["resources"]
    assert isinstance(resources, dict)
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 2


def test_the_cpu_values_request_no_gpu_and_make_no_quota(helm: Helm) -> None:
    docs = helm.template(values=[CPU_VALUES])
    assert not by_kind(docs, "ResourceQuota")
    container = named(docs, "Deployment", component("inference"))["spec"]["template"]["spec"]["containers"][0]
    for part in ("requests", "limits"):
        assert not any("gpu" in name for name in container["resources"].get(part, {})), part
    env = env_of(container)
    assert env["TTS_WORKER_ENGINE"] == "espeak"
    assert env["TTS_WORKER_REQUIRE_GPU"] == "false"
    assert "TTS_WORKER_CHECKPOINT_DIR" not in env
    assert container["image"].endswith("-cpu")


def test_the_default_image_is_the_cuda_one_with_indextts2(helm: Helm) -> None:
    container = inference_container(helm)
    assert str(container["image"]).endswith(":0.1.0-cuda")
    env = env_of(container)
    assert env["TTS_WORKER_ENGINE"] == "indextts2"
    assert env["TTS_WORKER_CHECKPOINT_DIR"] == "/models/checkpoints"
    assert env["TTS_WORKER_HF_HOME"] == "/models/hf_cache"
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TTS_WORKER_REQUIRE_GPU"] == "true"


def test_rollouts_never_surge_past_the_quota(helm: Helm) -> None:
    deployment = named(helm.template(), "Deployment", component("inference"))
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


@pytest.mark.parametrize(
    ("set_values", "message"),
    [
        (("inference.gpus=0",), "gpuQuota.enabled with inference.gpus=0"),
        (("inference.replicas=3", "gpuQuota.gpus=2"), r"inference.replicas x inference.gpus \(3\) exceeds"),
        (("inference.gpus=2", "gpuQuota.gpus=1"), r"\(2\) exceeds gpuQuota.gpus \(1\)"),
        (("models.enabled=false",), "indextts2 needs a checkpoint"),
        (("inference.shutdownGraceSeconds=60",), "below inference.terminationGracePeriodSeconds"),
        (("operator.replicas=2", "operator.leaderElection=false"), "needs operator.leaderElection"),
    ],
)
def test_contradictory_values_fail_with_a_message_that_says_what_to_change(
    helm: Helm, set_values: tuple[str, ...], message: str
) -> None:
    with pytest.raises(HelmError, match=message):
        helm.template(set_values=set_values)
