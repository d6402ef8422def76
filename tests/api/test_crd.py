"""The CRD: generated from the models without drift, valid for Kubernetes, and as strict as the gateway."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import re2
import yaml

from tests.api.apiserver_schema import patterns, schema_errors, structural_violations
from tts_api import crd
from tts_api.constants import API_GROUP_VERSION, KIND, SHORT_NAME
from tts_api.errors import TTSError
from tts_api.policy import ValidationPolicy
from tts_api.request import SPEC_OUTPUT_RULES, WAV_PATH_OR_PRESET_PATTERN, WAV_PATH_PATTERN
from tts_api.shared_paths import SharedPathError, SharedRoot
from tts_api.validation import parse_spec

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / crd.CRD_FILE
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0", "1.37.0"]


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def schema(committed: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = committed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def test_committed_crd_matches_the_models() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == crd.render_crd(), (
        "crds/ drifted from the models: run `make crd` and commit the result"
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_crd_object_is_valid_for_kubernetes(committed: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(committed, version, strict=True)


def test_kubernetes_validation_does_catch_a_broken_crd(committed: dict[str, Any]) -> None:
    broken = copy.deepcopy(committed)
    broken["spec"]["versions"][0]["served"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_schema_is_structural(schema: dict[str, Any]) -> None:
    assert structural_violations(schema) == []


def test_structural_check_does_find_violations() -> None:
    assert structural_violations({"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}]}}})


def test_every_pattern_is_re2(schema: dict[str, Any]) -> None:
    found = patterns(schema)
    assert len(found) >= 5
    for pattern in found:
        re2.compile(pattern)


def test_names_status_subresource_and_columns(committed: dict[str, Any]) -> None:
    spec = committed["spec"]
    assert spec["names"]["shortNames"] == [SHORT_NAME]
    assert f"{spec['group']}/{spec['versions'][0]['name']}" == API_GROUP_VERSION
    assert spec["names"]["kind"] == KIND
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Stage"] == ".status.currentStage"
    assert columns["Progress"] == ".status.progress"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_the_api_defaults_are_in_the_schema(schema: dict[str, Any]) -> None:
    config = schema["properties"]["spec"]["properties"]["workflowConfig"]["properties"]["indexttsConfig"]
    defaults = {name: prop.get("default") for name, prop in config["properties"].items()}
    assert defaults["emotionAlpha"] == 0.65
    assert defaults["useRandom"] is False
    assert defaults["maxTextTokensPerSegment"] == 120
    assert defaults["text"] is None


# --- the API server rejects what the gateway rejects -------------------------------------------


def manifest(**config: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_GROUP_VERSION,
        "kind": KIND,
        "metadata": {"name": "hello", "namespace": "default"},
        "spec": {
            "workflowConfig": {
                "workflowChain": ["indextts.generate_speech"],
                "indexttsConfig": {
                    "text": "你好",
                    "outputPath": "/share/workflows/output/hello.wav",
                    **config,
                },
            }
        },
    }


def edited(body: dict[str, Any], change: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    change(body["spec"])
    return body


def _drop_text(spec: dict[str, Any]) -> None:
    del spec["workflowConfig"]["indexttsConfig"]["text"]


def _drop_output(spec: dict[str, Any]) -> None:
    del spec["workflowConfig"]["indexttsConfig"]["outputPath"]


def _drop_config(spec: dict[str, Any]) -> None:
    del spec["workflowConfig"]["indexttsConfig"]


def _chain(*tasks: str) -> Any:
    def change(spec: dict[str, Any]) -> None:
        spec["workflowConfig"]["workflowChain"] = list(tasks)

    return change


STREAM_ID = "0123456789abcdef0123"

# (case, manifest, the field both the API server and the gateway must name)
REJECTED: list[tuple[str, dict[str, Any], str]] = [
    ("missing text", edited(manifest(), _drop_text), "spec.workflowConfig.indexttsConfig.text"),
    ("missing outputPath", edited(manifest(), _drop_output), "spec.workflowConfig.indexttsConfig.outputPath"),
    ("speech without config", edited(manifest(), _drop_config), "spec.workflowConfig.indexttsConfig"),
    ("emotionAlpha of 2", manifest(emotionAlpha=2), "spec.workflowConfig.indexttsConfig.emotionAlpha"),
    ("vector of 7", manifest(emotionVector=[0.1] * 7), "spec.workflowConfig.indexttsConfig.emotionVector"),
    (
        "vector weight 1.5",
        manifest(emotionVector=[1.5, 0, 0, 0, 0, 0, 0, 0]),
        "spec.workflowConfig.indexttsConfig.emotionVector[0]",
    ),
    ("unknown task", edited(manifest(), _chain("indextts.bogus")), "spec.workflowConfig.workflowChain[0]"),
    ("empty chain", edited(manifest(), _chain()), "spec.workflowConfig.workflowChain"),
    (
        "repeated task",
        edited(manifest(), _chain("indextts.health_check", "indextts.health_check")),
        "spec.workflowConfig.workflowChain",
    ),
    ("blank text", manifest(text="   "), "spec.workflowConfig.indexttsConfig.text"),
    (
        "output with ..",
        manifest(outputPath="/share/../etc/x.wav"),
        "spec.workflowConfig.indexttsConfig.outputPath",
    ),
    ("output not wav", manifest(outputPath="/share/x.mp3"), "spec.workflowConfig.indexttsConfig.outputPath"),
    (
        "reference with ..",
        manifest(referenceAudio="../x.wav"),
        "spec.workflowConfig.indexttsConfig.referenceAudio",
    ),
    (
        "tokens 601",
        manifest(maxTextTokensPerSegment=601),
        "spec.workflowConfig.indexttsConfig.maxTextTokensPerSegment",
    ),
    ("useRandom a string", manifest(useRandom="yes"), "spec.workflowConfig.indexttsConfig.useRandom"),
    (
        "stream speed 5",
        {**manifest(), "spec": {**manifest()["spec"], "speechStream": {"id": STREAM_ID, "speed": 5.0}}},
        "spec.speechStream.speed",
    ),
    (
        "stream id with a dot",
        {**manifest(), "spec": {**manifest()["spec"], "speechStream": {"id": "a.b" + STREAM_ID}}},
        "spec.speechStream.id",
    ),
    (
        "stream format ogg",
        {**manifest(), "spec": {**manifest()["spec"], "speechStream": {"id": STREAM_ID, "format": "ogg"}}},
        "spec.speechStream.format",
    ),
    (
        "timeout of 0",
        {**manifest(), "spec": {**manifest()["spec"], "timeoutSeconds": 0}},
        "spec.timeoutSeconds",
    ),
]


def names_field(error: str, field: str) -> bool:
    """The API server names a field by its path, or (for a CEL rule) by its parent and the message."""
    where, message = error.split(": ", 1)
    if where in (field, field.split("[")[0]):
        return True
    return field.startswith(where + ".") and field.removeprefix(where + ".") in message


@pytest.mark.parametrize(("body", "field"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED])
def test_api_server_and_gateway_reject_the_same_manifest(
    body: dict[str, Any], field: str, schema: dict[str, Any], unmounted_policy: ValidationPolicy
) -> None:
    server = schema_errors(schema, body)
    assert server, "the API server would accept this manifest"
    assert any(names_field(error, field) for error in server), server
    with pytest.raises(TTSError) as caught:
        parse_spec(body["spec"], policy=unmounted_policy)
    assert caught.value.field == field


@pytest.mark.parametrize(
    "chain",
    [["indextts.health_check"], ["indextts.get_model_info", "indextts.list_voice_presets"]],
)
def test_api_server_accepts_chains_without_speech(chain: list[str], schema: dict[str, Any]) -> None:
    body = {
        "apiVersion": API_GROUP_VERSION,
        "kind": KIND,
        "metadata": {"name": "hc"},
        "spec": {"workflowConfig": {"workflowChain": chain}},
    }
    assert schema_errors(schema, body) == []


def test_a_streamed_spec_needs_no_output_path(
    schema: dict[str, Any], unmounted_policy: ValidationPolicy
) -> None:
    body = edited(manifest(), _drop_output)
    body["spec"]["speechStream"] = {"id": STREAM_ID, "format": "opus", "speed": 1.5}
    assert schema_errors(schema, body) == []
    spec = parse_spec(body["spec"], policy=unmounted_policy)
    assert spec.speech_stream is not None
    assert (spec.speech_stream.format, spec.speech_stream.speed) == ("opus", 1.5)
    assert spec.workflow_config.indextts_config is not None
    assert spec.workflow_config.indextts_config.output_path is None


def test_api_server_accepts_a_full_manifest(schema: dict[str, Any]) -> None:
    body = manifest(
        referenceAudio="/share/reference/target_voice.wav",
        emotionReference="default",
        emotionAlpha=0.3,
        emotionVector=[0.1, 0, 0, 0, 0, 0, 0, 0.9],
        emotionText="开心",
        useRandom=True,
        maxTextTokensPerSegment=200,
    )
    body["spec"].update(videoPath="/app/videos/example.mp4", timeoutSeconds=600, ttlSecondsAfterFinished=3600)
    assert schema_errors(schema, body) == []


# --- the schema's path patterns agree with the validators -------------------------------------

PATHS = [
    "/share/a.wav",
    "a.wav",
    "/share/x/y/z.WAV",
    "/share/..a/b.wav",
    "/share/a../b.wav",
    "/share/./a.wav",
    "/share//a.wav",
    "/share/../a.wav",
    "../a.wav",
    "/share/a/../b.wav",
    "/share/..",
    "/share/a.mp3",
    "/share/a.wav/",
    "/share/a.wav.txt",
    "/share/.wav",
    ".wav",
]


@pytest.mark.parametrize("path", PATHS)
def test_schema_pattern_matches_the_lexical_rules(path: str) -> None:
    """Under the prefix, the CRD's pattern and SharedRoot.normalize agree (the prefix itself is
    configurable, so only the operator and the gateway check it)."""
    try:
        SharedRoot().normalize(path)
        python_accepts = True
    except SharedPathError:
        python_accepts = False
    assert (re2.search(WAV_PATH_PATTERN, path) is not None) == python_accepts
    assert (re2.search(WAV_PATH_OR_PRESET_PATTERN, path) is not None) == python_accepts


def test_cli_check_reports_drift(tmp_path: Path) -> None:
    from tts_cli.main import main

    target = tmp_path / "crd.yaml"
    assert main(["crd", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd.render_crd()
    assert main(["crd", "--check", str(target)]) == 0
    target.write_text(target.read_text(encoding="utf-8").replace("ttswf", "tw"), encoding="utf-8")
    assert main(["crd", "--check", str(target)]) == 1


# --- the spec is immutable once created ---------------------------------------------------------


def test_the_spec_carries_the_immutability_rule_and_nothing_else_does(schema: dict[str, Any]) -> None:
    rule = {
        "rule": "self == oldSelf",
        "message": "spec is immutable once created: create a new TTSWorkflow instead",
    }
    assert rule == crd.SPEC_IMMUTABLE_RULE
    # Beside it, the spec's own requirement (an output path, unless the speech is streamed).
    assert schema["properties"]["spec"]["x-kubernetes-validations"] == [*SPEC_OUTPUT_RULES, rule]
    built = crd.build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert built["properties"]["spec"]["x-kubernetes-validations"] == [*SPEC_OUTPUT_RULES, rule]
    # Not on the object nor on status: the operator's writes (status, finalizers) must never meet it.
    assert "x-kubernetes-validations" not in schema
    assert "oldSelf" not in yaml.safe_dump(schema["properties"]["status"])


def test_the_api_server_refuses_a_spec_edit_and_admits_the_operators_writes(schema: dict[str, Any]) -> None:
    stored = manifest()
    message = "spec is immutable once created: create a new TTSWorkflow instead"
    assert schema_errors(schema, stored) == [], "a create is not an edit: the transition rule is not checked"
    assert schema_errors(schema, stored, old=stored) == []
    health_check = edited(stored, _chain("indextts.health_check"))
    del health_check["spec"]["workflowConfig"]["indexttsConfig"]
    for changed in (manifest(emotionAlpha=0.3), manifest(text="另一段话"), health_check):
        assert schema_errors(schema, changed) == [], "each is a valid spec of its own"
        assert schema_errors(schema, changed, old=stored) == [f"spec: {message}"]
    # What the operator writes: status (a subresource), finalizers and annotations (metadata).
    written = copy.deepcopy(stored)
    written["status"] = {"phase": "Running", "progress": 10}
    written["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker"]
    written["metadata"]["annotations"] = {"tts.indextts.io/last-handled-configuration": "{}"}
    assert schema_errors(schema, written, old=stored) == []
