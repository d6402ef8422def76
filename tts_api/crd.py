"""The CustomResourceDefinitions (TTSWorkflow, TTSVoice), generated from the API models.

``indextts-k8s crd`` writes them to ``crds/`` (``ttsworkflows.tts.indextts.io.yaml``,
``ttsvoices.tts.indextts.io.yaml``); a test regenerates them and fails on any drift, so the models
stay the one source of truth for the schemas.
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from tts_api.constants import (
    API_GROUP,
    API_VERSION,
    CRD_NAME,
    KIND,
    LIST_KIND,
    PLURAL,
    SHORT_NAME,
    SINGULAR,
)
from tts_api.resource import TTSWorkflowSpec, TTSWorkflowStatus
from tts_api.voices import (
    VOICE_CRD_NAME,
    VOICE_KIND,
    VOICE_LIST_KIND,
    VOICE_PLURAL,
    VOICE_SHORT_NAME,
    VOICE_SINGULAR,
    VoiceSpec,
)

CRD_FILE = f"crds/{CRD_NAME}.yaml"
VOICE_CRD_FILE = f"crds/{VOICE_CRD_NAME}.yaml"
HEADER = (
    "# Generated from the models in tts_api/ by `indextts-k8s crd`; do not edit by hand.\n"
    "# tests/api/test_crd.py fails when this file and the models drift apart.\n"
)

# The spec is immutable once created. A transition rule: the API server checks it on updates only
# (``oldSelf`` is the stored spec), from Kubernetes 1.25 on; status is a subresource and metadata is
# outside spec, so the operator's status, finalizer and annotation writes never meet it. An older
# server drops the rule, and the operator fails a workflow whose spec was edited (reason SpecChanged).
SPEC_IMMUTABLE_RULE: dict[str, str] = {
    "rule": "self == oldSelf",
    "message": "spec is immutable once created: create a new TTSWorkflow instead",
}

# Keys of pydantic's JSON schema that a Kubernetes structural schema keeps as they are.
_KEPT = {
    "description",
    "type",
    "format",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "required",
    "x-kubernetes-list-type",
    "x-kubernetes-validations",
}


class SchemaError(ValueError):
    """The models use a construct that a structural schema cannot express."""


def structural_schema(model_schema: dict[str, Any], *, defaults: bool) -> dict[str, Any]:
    """Turn pydantic's JSON schema into a Kubernetes structural OpenAPI v3 schema.

    ``$ref`` is inlined, ``X | None`` becomes X (absent fields mean None), ``dict[str, Any]`` keeps
    unknown fields, titles go, and defaults stay only where ``defaults`` asks for them (the API
    server applies them on create).
    """
    definitions = model_schema.get("$defs", {})

    def convert(node: dict[str, Any]) -> dict[str, Any]:
        node = dict(node)
        if "$ref" in node:
            target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
            node = {**target, **node}  # the field's own description wins over the model's
        if "anyOf" in node:
            branches = [b for b in node.pop("anyOf") if b.get("type") != "null"]
            if len(branches) != 1:
                raise SchemaError(f"a union of several types cannot be structural: {branches}")
            inner = convert(branches[0])
            outer = {k: v for k, v in node.items() if k != "default" or v is not None}
            return {**inner, **convert_plain(outer, typed=False)}
        return convert_plain(node, typed=True)

    def convert_plain(node: dict[str, Any], *, typed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEPT}
        if defaults and node.get("default") is not None:
            out["default"] = copy.deepcopy(node["default"])
        if "properties" in node:
            out["properties"] = {name: convert(prop) for name, prop in node["properties"].items()}
            out.setdefault("type", "object")
        if "items" in node:
            out["items"] = convert(node["items"])
        extra = node.get("additionalProperties")
        if extra is True or extra == {}:
            out["x-kubernetes-preserve-unknown-fields"] = True
        elif isinstance(extra, dict):
            out["additionalProperties"] = convert(extra)
        if typed and "type" not in out and "x-kubernetes-preserve-unknown-fields" not in out:
            out["x-kubernetes-preserve-unknown-fields"] = True  # Any
        return out

    return convert(model_schema)


def open_api_schema() -> dict[str, Any]:
    """``openAPIV3Schema`` for the TTSWorkflow kind."""
    spec = structural_schema(
        TTSWorkflowSpec.model_json_schema(by_alias=True, mode="validation"), defaults=True
    )
    spec["x-kubernetes-validations"] = [*spec.get("x-kubernetes-validations", []), SPEC_IMMUTABLE_RULE]
    status = structural_schema(
        TTSWorkflowStatus.model_json_schema(by_alias=True, mode="serialization"), defaults=False
    )
    return {
        "type": "object",
        "description": "A text-to-speech workflow: a request of the IndexTTS service API (v1) in spec, "
        "its progress and result in status.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }


def printer_columns() -> list[dict[str, Any]]:
    return [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Stage", "type": "string", "jsonPath": ".status.currentStage"},
        {"name": "Progress", "type": "integer", "jsonPath": ".status.progress"},
        {"name": "Pod", "type": "string", "jsonPath": ".status.heartbeat.pod", "priority": 1},
        {"name": "Error", "type": "string", "jsonPath": ".status.error.code", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def custom_resource_definition(
    *,
    name: str,
    names: dict[str, Any],
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    status: bool,
) -> dict[str, Any]:
    """A namespaced CustomResourceDefinition of this API group, one served version."""
    version: dict[str, Any] = {"name": API_VERSION, "served": True, "storage": True}
    if status:
        version["subresources"] = {"status": {}}
    version["additionalPrinterColumns"] = columns
    version["schema"] = {"openAPIV3Schema": schema}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "indextts-k8s"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {**names, "categories": ["tts"]},
            "versions": [version],
        },
    }


def build_crd() -> dict[str, Any]:
    """The TTSWorkflow CustomResourceDefinition object."""
    return custom_resource_definition(
        name=CRD_NAME,
        names={
            "kind": KIND,
            "listKind": LIST_KIND,
            "plural": PLURAL,
            "singular": SINGULAR,
            "shortNames": [SHORT_NAME],
        },
        schema=open_api_schema(),
        columns=printer_columns(),
        status=True,
    )


def voice_schema() -> dict[str, Any]:
    """``openAPIV3Schema`` for the TTSVoice kind: a spec, no status."""
    spec = structural_schema(VoiceSpec.model_json_schema(by_alias=True, mode="validation"), defaults=True)
    return {
        "type": "object",
        "description": "A library voice: a named reference clip on the shared volume that speech may clone.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }


def build_voice_crd() -> dict[str, Any]:
    """The TTSVoice CustomResourceDefinition object."""
    return custom_resource_definition(
        name=VOICE_CRD_NAME,
        names={
            "kind": VOICE_KIND,
            "listKind": VOICE_LIST_KIND,
            "plural": VOICE_PLURAL,
            "singular": VOICE_SINGULAR,
            "shortNames": [VOICE_SHORT_NAME],
        },
        schema=voice_schema(),
        columns=[
            {"name": "Display", "type": "string", "jsonPath": ".spec.displayName"},
            {"name": "Language", "type": "string", "jsonPath": ".spec.language"},
            {"name": "Seconds", "type": "number", "jsonPath": ".spec.durationSeconds"},
            {"name": "Audio", "type": "string", "jsonPath": ".spec.audio", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        status=False,
    )


def render(definition: dict[str, Any]) -> str:
    """A CRD as the YAML text kept in ``crds/``."""
    return HEADER + yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=100)


def render_crd() -> str:
    """The TTSWorkflow CRD as the YAML text kept in ``crds/``."""
    return render(build_crd())


def render_voice_crd() -> str:
    """The TTSVoice CRD as the YAML text kept in ``crds/``."""
    return render(build_voice_crd())
