"""values.schema.json: a typo or a wrong type fails `helm install` with a message naming the value."""

from __future__ import annotations

import json

import pytest
import yaml

from kube_testbed.helm import CHART, CPU_VALUES, Helm, HelmError

# (--set, the value the message must name, what it must say). Helm 3 names a value `a.b: ...`,
# helm 4 `at '/a/b': ...`; both are accepted, so that the table holds for either.
BAD_VALUES = {
    "a misspelt top-level key": ("gpuQouta.gpus=2", "", "gpuQouta"),
    "a misspelt nested key": ("gateway.replica=2", "gateway", "replica"),
    "a misspelt inference key": ("inference.gpu=1", "inference", "gpu"),
    "a string for a number": ("gpuQuota.gpus=two", "gpuQuota.gpus", "string"),
    "a negative GPU count": ("inference.gpus=-1", "inference.gpus", "0"),
    "an unknown engine": ("inference.engine=tacotron", "inference.engine", "one of"),
    "an image tagged latest": ("gateway.image.tag=latest", "gateway.image.tag", "not"),
    "a bad pull policy": ("operator.image.pullPolicy=Sometimes", "operator.image.pullPolicy", "one of"),
    "a text limit above the CRD's": ("maxTextLength=20001", "maxTextLength", "20"),
    "a port out of range": ("gateway.port=70000", "gateway.port", "65"),
    "an unknown service type": ("gateway.service.type=Internal", "gateway.service.type", "one of"),
    "a relative share path": ("share.mountPath=share", "share.mountPath", "pattern"),
    "a NATS URL that is not one": ("nats.external.url=http://nats", "nats.external.url", "pattern"),
    "an unknown models source": ("models.source=s3", "models.source", "one of"),
    "an unknown image variant": ("inference.image.variant=rocm", "inference.image.variant", "one of"),
}


@pytest.mark.parametrize(("set_value", "value", "says"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_values_are_refused_naming_the_value(helm: Helm, set_value: str, value: str, says: str) -> None:
    with pytest.raises(HelmError) as refused:
        helm.template(set_values=[set_value])
    message = str(refused.value)
    if set_value.split("=")[0].rsplit(".", 1)[-1] == says:  # an unknown key
        assert "additional propert" in message.lower()
        assert says in message
    else:
        assert says in message
    helm3, helm4 = f"{value}:", "at '/" + value.replace(".", "/") + "'"
    assert helm3 in message or helm4 in message or not value, message


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
    from kube_testbed.helm import REPO

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
