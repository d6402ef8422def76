"""The TTSWorkflow CRD and the chart's RBAC on a real Kubernetes API server (kube-apiserver + etcd)."""

from __future__ import annotations

import json
import os
import ssl
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client import ApiException

from kube_access.workflows import MERGE_PATCH, Workflows
from kube_testbed.apiserver import (
    ASSETS_ENV,
    CEL_RULES_SINCE,
    ApiServerError,
    Assets,
    AssetsNotFoundError,
    RealApiServer,
    crd_for_server,
    default_assets_directory,
    find_assets,
    real_api_server,
    service_account_username,
    without_cel_rules,
)
from kube_testbed.components import forbidden_lines
from kube_testbed.helm import NAMESPACE, component
from tests.kube.fixtures import NOBODY
from tts_api.constants import API_GROUP, API_GROUP_VERSION, API_VERSION, CRD_NAME, KIND, PLURAL

GATEWAY = component("gateway")
OPERATOR = component("operator")


def health_check(name: str) -> dict[str, Any]:
    """The smallest valid TTSWorkflow (examples/health-check.yaml)."""
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"workflowConfig": {"workflowChain": ["indextts.health_check"]}},
    }


def status_of(exc_info: pytest.ExceptionInfo[ApiException]) -> int:
    status: int = exc_info.value.status
    return status


def message_of(exc_info: pytest.ExceptionInfo[ApiException]) -> str:
    """The message of the Status object the server answered with."""
    message: str = json.loads(exc_info.value.body or "{}").get("message", "")
    return message


def custom_objects(api: client.ApiClient) -> Any:
    """CustomObjectsApi, typed loosely (its generated signatures return ``object``)."""
    return client.CustomObjectsApi(api)


# --- no server needed -----------------------------------------------------------------------------


def test_cel_rules_are_stripped_at_every_depth_and_only_for_an_older_server() -> None:
    crd = {
        "spec": {
            "x-kubernetes-validations": [{"rule": "true"}],
            "versions": [
                {"schema": {"properties": {"a": {"x-kubernetes-validations": [], "type": "string"}}}}
            ],
        }
    }
    stripped = without_cel_rules(crd)
    assert stripped == {"spec": {"versions": [{"schema": {"properties": {"a": {"type": "string"}}}}]}}
    assert "x-kubernetes-validations" in crd["spec"], "the input is left as it was"
    assert crd_for_server(crd, (1, 20)) == stripped
    assert crd_for_server(crd, CEL_RULES_SINCE) == crd


def test_kubebuilder_assets_names_the_binaries_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ASSETS_ENV, str(tmp_path))
    with pytest.raises(
        AssetsNotFoundError, match=f"no etcd and no kube-apiserver and no kubectl in {ASSETS_ENV}="
    ):
        find_assets()
    for name in ("etcd", "kube-apiserver", "kubectl"):
        (tmp_path / name).write_text("#!/bin/sh\n")
        (tmp_path / name).chmod(0o755)
    found = find_assets()
    assert (found.etcd, found.kube_apiserver, found.kubectl) == (
        tmp_path / "etcd",
        tmp_path / "kube-apiserver",
        tmp_path / "kubectl",
    )
    assert found.kube_controller_manager is None, "optional: only the tests that need controllers"
    (tmp_path / "kube-controller-manager").write_text("#!/bin/sh\n")
    (tmp_path / "kube-controller-manager").chmod(0o755)
    assert find_assets().kube_controller_manager == tmp_path / "kube-controller-manager"


def test_the_default_assets_live_in_the_users_cache_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ASSETS_ENV, raising=False)
    monkeypatch.delenv("KUBE_ASSETS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_assets_directory() == tmp_path / "indextts-k8s" / "kube-assets"
    with pytest.raises(AssetsNotFoundError, match=r"build them with scripts/kube_apiserver_assets\.sh"):
        find_assets()
    monkeypatch.setenv("KUBE_ASSETS_CACHE", str(tmp_path / "elsewhere"))
    assert default_assets_directory() == tmp_path / "elsewhere" / "kube-assets"


# --- the server -----------------------------------------------------------------------------------


def child_processes() -> set[int]:
    """The process ids whose parent is this process (from /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == os.getpid():
            children.add(int(stat.parent.name))
    return children


def test_a_failed_start_shows_both_logs_and_leaves_no_process(kube_assets: Assets) -> None:
    before = child_processes()
    with (
        pytest.raises(ApiServerError, match="kube-apiserver exited") as failed,
        real_api_server(assets=kube_assets, extra_args=["--no-such-flag"]),
    ):
        pytest.fail("the server came up with an unknown flag")
    assert "--- etcd.log" in str(failed.value)
    assert "unknown flag: --no-such-flag" in str(failed.value)
    assert child_processes() <= before, "etcd is stopped too"


def test_the_server_answers_with_its_version_over_verified_tls(kube_api: RealApiServer) -> None:
    context = ssl.create_default_context(cafile=str(kube_api.ca_file))
    request = urllib.request.Request(  # noqa: S310 (https, the test server)
        f"{kube_api.url}/version", headers={"Authorization": f"Bearer {kube_api.admin_token}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:  # noqa: S310
        version = json.load(answer)
    assert (int(version["major"]), int(version["minor"].rstrip("+"))) == kube_api.version
    assert version["gitVersion"].startswith(f"v{kube_api.version[0]}.{kube_api.version[1]}.")


def test_the_crd_is_established_with_its_names_and_status_subresource(kube_crd: dict[str, Any]) -> None:
    conditions = {c["type"]: c["status"] for c in kube_crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert kube_crd["metadata"]["name"] == CRD_NAME
    assert kube_crd["status"]["acceptedNames"]["shortNames"] == ["ttswf"]
    (version,) = kube_crd["spec"]["versions"]
    assert version["name"] == API_VERSION
    assert version["subresources"] == {"status": {}}


async def test_a_created_workflow_gets_uid_resource_version_and_generation_one(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    with kube_api.api_client() as api:
        created = await Workflows(api).create(kube_namespace, health_check("first"))
        meta = created["metadata"]
        assert meta["uid"]
        assert meta["resourceVersion"]
        assert meta["generation"] == 1
        assert meta["creationTimestamp"]
        assert meta["namespace"] == kube_namespace
        listed = await Workflows(api).list(kube_namespace)
        assert [item["metadata"]["uid"] for item in listed] == [meta["uid"]]


async def test_status_patches_keep_the_generation_and_spec_patches_bump_it(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    with kube_api.api_client() as api:
        workflows = Workflows(api)
        created = await workflows.create(kube_namespace, health_check("patched"))

        await workflows.patch_status(kube_namespace, "patched", {"phase": "Running", "progress": 10})
        after_status = await workflows.get(kube_namespace, "patched")
        assert after_status is not None
        assert after_status["status"]["phase"] == "Running"
        assert after_status["metadata"]["generation"] == 1
        assert after_status["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]

        # Through the main resource a status change is ignored and a spec change bumps the generation.
        custom_objects(api).patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            kube_namespace,
            PLURAL,
            "patched",
            {"spec": {"timeoutSeconds": 120}, "status": {"phase": "Failed"}},
            _content_type=MERGE_PATCH,
        )
        after_spec = await workflows.get(kube_namespace, "patched")
        assert after_spec is not None
        assert after_spec["metadata"]["generation"] == 2
        assert after_spec["spec"]["timeoutSeconds"] == 120
        assert after_spec["status"]["phase"] == "Running"


def test_the_served_schema_refuses_an_invalid_workflow(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    body = health_check("invalid")
    body["spec"]["workflowConfig"]["workflowChain"] = ["indextts.no_such_task"]
    with kube_api.api_client() as api, pytest.raises(ApiException) as refused:
        custom_objects(api).create_namespaced_custom_object(
            API_GROUP, API_VERSION, kube_namespace, PLURAL, body
        )
    assert status_of(refused) == 422
    assert "spec.workflowConfig.workflowChain" in message_of(refused)


def test_a_user_without_rbac_is_forbidden_and_a_wrong_token_unauthorized(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    with kube_api.api_client(NOBODY) as api, pytest.raises(ApiException) as forbidden:
        custom_objects(api).list_namespaced_custom_object(API_GROUP, API_VERSION, kube_namespace, PLURAL)
    assert status_of(forbidden) == 403
    expected = f'User "{NOBODY}" cannot list resource "{PLURAL}" in API group "{API_GROUP}"'
    assert expected in message_of(forbidden)

    configuration = kube_api.configuration()
    configuration.api_key = {"BearerToken": "not-a-token"}
    with client.ApiClient(configuration) as api, pytest.raises(ApiException) as unauthorized:
        client.CoreV1Api(api).list_namespace()
    assert status_of(unauthorized) == 401


def test_the_kubeconfig_file_authenticates_as_its_user(kube_api: RealApiServer) -> None:
    with config.new_client_from_config(str(kube_api.kubeconfig(NOBODY))) as api:  # type: ignore[no-untyped-call]
        review = client.AuthorizationV1Api(api).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(
                spec=client.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=client.V1ResourceAttributes(
                        group=API_GROUP, resource=PLURAL, verb="list", namespace=NAMESPACE
                    )
                )
            )
        )
    assert review.status is not None
    assert review.status.allowed is False


# --- the chart's RBAC, as rendered, for the components' ServiceAccounts -----------------------------


def as_service_account(kube_api: RealApiServer, name: str) -> client.ApiClient:
    kube_api.service_account_token(NAMESPACE, name)
    return kube_api.api_client(service_account_username(NAMESPACE, name))


def forbidden(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 403:
            return True
        raise
    return False


@pytest.mark.usefixtures("chart_rbac")
async def test_the_gateway_creates_reads_lists_and_deletes_workflows_and_may_not_touch_status(
    kube_api: RealApiServer, kube_crd: dict[str, Any], kube_namespace: str
) -> None:
    with as_service_account(kube_api, GATEWAY) as api:
        workflows, custom = Workflows(api), custom_objects(api)
        created = await workflows.create(NAMESPACE, health_check("from-gateway"))
        assert created["metadata"]["generation"] == 1
        fetched = await workflows.get(NAMESPACE, "from-gateway")
        assert fetched is not None
        assert fetched["metadata"]["uid"] == created["metadata"]["uid"]
        assert "from-gateway" in [item["metadata"]["name"] for item in await workflows.list(NAMESPACE)]
        assert client.CoreV1Api(api).list_namespaced_resource_quota(NAMESPACE).items == []
        watch = custom.list_namespaced_custom_object(
            API_GROUP, API_VERSION, NAMESPACE, PLURAL, watch=True, timeout_seconds=1, _preload_content=False
        )
        assert watch.status == 200, "the gateway may watch workflows"
        watch.release_conn()

        with pytest.raises(ApiException) as status_patch:
            await workflows.patch_status(NAMESPACE, "from-gateway", {"phase": "Succeeded"})
        assert status_of(status_patch) == 403
        patch_spec = partial(
            custom.patch_namespaced_custom_object, API_GROUP, API_VERSION, NAMESPACE, PLURAL, "from-gateway",
            {"spec": {"timeoutSeconds": 1}}, _content_type=MERGE_PATCH,
        )  # fmt: skip
        assert forbidden(patch_spec), "the gateway never patches a workflow"
        elsewhere = partial(
            custom.list_namespaced_custom_object, API_GROUP, API_VERSION, kube_namespace, PLURAL
        )
        assert forbidden(elsewhere), "the gateway's rights end at its namespace"
        assert forbidden(lambda: client.CoreV1Api(api).list_namespaced_secret(NAMESPACE))

        assert await workflows.delete(NAMESPACE, "from-gateway") is True
        assert await workflows.get(NAMESPACE, "from-gateway") is None


@pytest.mark.usefixtures("chart_rbac")
async def test_the_operator_patches_status_but_creates_no_workflow(
    kube_api: RealApiServer, kube_crd: dict[str, Any]
) -> None:
    with kube_api.api_client() as admin:
        await Workflows(admin).create(NAMESPACE, health_check("for-operator"))
    with as_service_account(kube_api, OPERATOR) as api:
        workflows = Workflows(api)
        await workflows.patch_status(NAMESPACE, "for-operator", {"phase": "Running"})
        current = await workflows.get(NAMESPACE, "for-operator")
        assert current is not None
        assert current["status"]["phase"] == "Running"
        assert current["metadata"]["generation"] == 1
        with pytest.raises(ApiException) as create:
            await workflows.create(NAMESPACE, health_check("by-operator"))
        assert status_of(create) == 403
        # It finds the resource by discovery, not by reading CRDs (kopf's scanning is off).
        assert await workflows.served() is True
        assert forbidden(lambda: client.ApiextensionsV1Api(api).list_custom_resource_definition())
        assert await workflows.delete(NAMESPACE, "for-operator") is True


def test_a_403_is_told_from_a_timestamps_milliseconds() -> None:
    log = "\n".join(
        [
            "2026-12-02 20:46:00,403 INFO    gateway.app: workflow wf-1 created",
            "2026-12-02T20:46:00.403Z kopf: handler done",
            "kubernetes.client.exceptions.ApiException: (403)",
            "Reason: Forbidden",
            "HTTP response status 403 for PATCH ttsworkflows",
        ]
    )
    assert forbidden_lines(log) == log.splitlines()[2:]
