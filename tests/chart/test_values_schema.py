"""values.schema.json: a typo or a wrong type fails `helm install` with a message naming the value."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.chart.helm import CHART, CPU_VALUES, Helm, HelmError

BAD_VALUES = {
    "a misspelt top-level key": ("gpuQouta.gpus=2", "Additional property gpuQouta is not allowed"),
    "a misspelt nested key": ("gateway.replica=2", "Additional property replica is not allowed"),
    "a misspelt inference key": ("inference.gpu=1", "Additional property gpu is not allowed"),
    "a string for a number": ("gpuQuota.gpus=two", "gpuQuota.gpus: Invalid type"),
    "a negative GPU count": ("inference.gpus=-1", "inference.gpus: Must be greater than or equal to 0"),
    "an unknown engine": ("inference.engine=tacotron", "inference.engine: inference.engine must be one of"),
    "an image tagged latest": ("gateway.image.tag=latest", "gateway.image.tag: Must not validate"),
    "a bad pull policy": ("operator.image.pullPolicy=Sometimes", "operator.image.pullPolicy"),
    "a text limit above the CRD's": (
        "maxTextLength=20001",
        "maxTextLength: Must be less than or equal to 20000",
    ),
    "a port out of range": ("gateway.port=70000", "gateway.port: Must be less than or equal to 65535"),
    "an unknown service type": ("gateway.service.type=Internal", "gateway.service.type"),
    "a relative share path": ("share.mountPath=share", "share.mountPath: Does not match pattern"),
    "a NATS URL that is not one": ("nats.external.url=http://nats", "nats.external.url: Does not match"),
    "an unknown models source": ("models.source=s3", "models.source"),
    "an unknown image variant": ("inference.image.variant=rocm", "inference.image.variant"),
}


@pytest.mark.parametrize(("set_value", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_naming_the_value(helm: Helm, set_value: str, message: str) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(set_values=[set_value])
    assert message in str(refused.value)


def test_every_default_value_is_described_by_the_schema() -> None:
    """Walk values.yaml beside the schema: each key is a property the schema declares."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing: list[str] = []

    def walk(value: object, node: dict[str, object], path: str) -> None:
        if not isinstance(value, dict):
            return
        properties = node.get("properties")
        if not isinstance(properties, dict):
            return  # a free-form object (resources, affinity, ...)
        for key, child in value.items():
            if key not in properties:
                missing.append(f"{path}{key}")
            else:
                walk(child, properties[key], f"{path}{key}.")

    walk(values, schema, "")
    assert missing == []
    assert schema["additionalProperties"] is False


def test_every_schema_property_has_a_default_in_values_yaml() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(schema["properties"]) == set(values)
    for group in ("gateway", "operator", "inference", "nats", "share", "models", "gpuQuota"):
        assert set(schema["properties"][group]["properties"]) == set(values[group]), group


def test_the_cpu_values_file_passes_the_schema(helm: Helm) -> None:
    assert helm.template(values=[CPU_VALUES])


# Keys every component has, documented once for all in docs/helm.md rather than per component.
COMMON_KEYS = {
    "image",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
    "podAnnotations",
    "podLabels",
    "extraEnv",
}


def test_docs_helm_md_documents_every_value() -> None:
    from tests.chart.helm import REPO

    docs = (REPO / "docs" / "helm.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    undocumented: list[str] = []

    def walk(value: object, node: dict[str, object], path: list[str]) -> None:
        properties = node.get("properties")
        if isinstance(value, dict) and isinstance(properties, dict):
            for key, child in value.items():
                if len(path) == 1 and key in COMMON_KEYS:
                    continue
                walk(child, properties[key], [*path, key])
            return
        dotted = ".".join(path)
        last = "." + path[-1]
        if f"`{dotted}`" not in docs and not (f"`{'.'.join(path[:-1])}" in docs and f"`{last}`" in docs):
            undocumented.append(dotted)

    walk(values, schema, [])
    assert undocumented == []
