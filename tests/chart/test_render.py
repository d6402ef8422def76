"""Every rendered manifest is valid Kubernetes, for each values set users start from."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from kube_testbed.helm import CPU_VALUES, REPO, Helm, Manifest, by_kind, component, named
from tests.chart.test_autoscaling import check_scaled_object

EVERYTHING = Path(__file__).with_name("values-everything.yaml")
KUBERNETES_VERSIONS = ("1.29.0", "1.30.0", "1.37.0")  # Chart.yaml's oldest, and the newest schemas we have

VALUE_SETS: dict[str, tuple[Path, ...]] = {
    "default": (),
    "cpu": (CPU_VALUES,),
    "everything": (EVERYTHING,),
}

# Kinds that are no part of Kubernetes itself: checked here by hand, never silently passed.
CUSTOM_KINDS = {"monitoring.coreos.com/v1/ServiceMonitor", "keda.sh/v1alpha1/ScaledObject"}


def check_service_monitor(doc: Manifest) -> None:
    spec = doc["spec"]
    assert spec["selector"]["matchLabels"], "a ServiceMonitor selects its Service by labels"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "authorization"}, endpoint
        assert isinstance(endpoint["port"], str)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict_passes(helm: Helm, values: Sequence[Path]) -> None:
    output = helm.lint(values=values)
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_manifest_matches_the_kubernetes_schema(
    helm: Helm, values: Sequence[Path], version: str
) -> None:
    docs = helm.template(values=values, include_crds=True)
    assert len(docs) > 20
    for doc in docs:
        kind = f"{doc['apiVersion']}/{doc['kind']}"
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            assert kind in CUSTOM_KINDS, f"{kind} has no Kubernetes schema and no check here"
            if doc["kind"] == "ScaledObject":
                check_scaled_object(doc)  # KEDA's own CRD schema
            else:
                check_service_monitor(doc)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{kind} {doc['metadata']['name']}: {exc.message} at {list(exc.path)}")


def test_the_optional_parts_render_only_when_asked(helm: Helm) -> None:
    default = helm.template()
    everything = helm.template(values=[EVERYTHING])
    for kind in ("Ingress", "ServiceMonitor", "ConfigMap", "ScaledObject"):
        assert len(by_kind(everything, kind)) > len(by_kind(default, kind)), kind
    assert not by_kind(default, "Ingress")
    assert not by_kind(default, "ServiceMonitor")


CRD_NAMES = ("ttsvoices.tts.indextts.io.yaml", "ttsworkflows.tts.indextts.io.yaml")


def test_the_crds_come_from_the_files_in_crds(helm: Helm) -> None:
    import yaml

    sources = [REPO / "crds" / name for name in CRD_NAMES]
    for source in sources:
        in_chart = REPO / "charts" / "indextts" / "crds" / source.name
        assert in_chart.is_symlink(), "the chart's CRDs must be links to crds/, not second copies"
        assert in_chart.resolve() == source.resolve()
    rendered = by_kind(helm.template(include_crds=True), "CustomResourceDefinition")
    assert sorted(rendered, key=lambda crd: crd["metadata"]["name"]) == [
        yaml.safe_load(source.read_text()) for source in sources
    ]


def test_helm_package_carries_the_crd_contents(helm: Helm, tmp_path: Path) -> None:
    import tarfile

    helm.run("package", str(REPO / "charts" / "indextts"), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("indextts-*.tgz")
    with tarfile.open(archive) as tar:
        for name in CRD_NAMES:
            member = tar.getmember(f"indextts/crds/{name}")
            assert member.isfile(), "the packaged chart holds the file itself, not a dangling link"
            packaged = tar.extractfile(member)
            assert packaged is not None
            assert packaged.read() == (REPO / "crds" / name).read_bytes()


def test_chart_version_and_app_version_follow_the_project(helm: Helm) -> None:
    import tomllib

    import yaml

    chart = yaml.safe_load((REPO / "charts" / "indextts" / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == project["version"]
    deployment = named(helm.template(), "Deployment", component("gateway"))
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith(":" + project["version"])


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_image_is_pinned(helm: Helm, values: Sequence[Path]) -> None:
    for doc in helm.template(values=values):
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            image: str = container["image"]
            repository, _, tag = image.rpartition(":")
            assert repository, image
            assert tag not in {"", "latest"}, image


def test_every_service_selects_pods_of_the_release(helm: Helm) -> None:
    docs = helm.template(values=[EVERYTHING])
    pod_labels = [
        doc["spec"]["template"]["metadata"]["labels"]
        for doc in docs
        if doc["kind"] in {"Deployment", "StatefulSet"}
    ]
    for service in by_kind(docs, "Service"):
        selector: dict[str, Any] = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), service["metadata"]["name"]
    for workload in docs:
        if workload["kind"] in {"Deployment", "StatefulSet"}:
            selector = workload["spec"]["selector"]["matchLabels"]
            assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    ("kube_version", "accepted"), [("1.28.9", False), ("1.29.0", True), ("1.37.1", True)]
)
def test_the_chart_states_the_kubernetes_versions_it_supports(
    helm: Helm, kube_version: str, accepted: bool
) -> None:
    from kube_testbed.helm import CHART, HelmError

    args = ["template", "tts", str(CHART), "--kube-version", kube_version]
    if accepted:
        assert "kind: Deployment" in helm.run(*args)
    else:
        with pytest.raises(HelmError, match="kubeVersion"):
            helm.run(*args)
