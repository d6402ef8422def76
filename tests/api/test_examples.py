"""The example manifests are valid TTSWorkflows: for the models, for the CRD, and as the workflow
API's usage examples write them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.apiserver_schema import schema_errors
from tts_api.constants import API_GROUP_VERSION, KIND, TaskName
from tts_api.crd import build_crd
from tts_api.policy import ValidationPolicy
from tts_api.resource import TTSWorkflow
from tts_api.validation import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
API_REFERENCE_EXAMPLES = {
    "basic.yaml": {
        "text": "你好，这是IndexTTS2生成的语音。",
        "outputPath": "/share/workflows/output/hello.wav",
    },
    "voice-cloning.yaml": {
        "text": "这是使用音色克隆生成的语音。",
        "outputPath": "/share/workflows/output/cloned.wav",
        "referenceAudio": "/share/reference/target_voice.wav",
    },
    "emotion.yaml": {
        "text": "今天天气真好，心情很愉快！",
        "outputPath": "/share/workflows/output/happy.wav",
        "emotionVector": [0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0],
    },
}


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def all_examples() -> list[str]:
    return sorted(path.name for path in EXAMPLES.glob("*.yaml"))


def test_the_api_references_three_examples_are_there() -> None:
    assert set(API_REFERENCE_EXAMPLES) <= set(all_examples())


@pytest.mark.parametrize("name", all_examples())
def test_example_validates_against_the_models(name: str, unmounted_policy: ValidationPolicy) -> None:
    body = load(name)
    assert (body["apiVersion"], body["kind"]) == (API_GROUP_VERSION, KIND)
    spec = parse_spec(body["spec"], policy=unmounted_policy)
    workflow = TTSWorkflow(metadata=body["metadata"], spec=spec)
    assert (
        workflow.to_k8s()["spec"]["workflowConfig"]["workflowChain"]
        == body["spec"]["workflowConfig"]["workflowChain"]
    )


@pytest.mark.parametrize("name", all_examples())
def test_example_passes_the_crd_schema(name: str) -> None:
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema_errors(schema, load(name)) == []


@pytest.mark.parametrize(("name", "config"), API_REFERENCE_EXAMPLES.items())
def test_example_says_what_the_api_reference_says(name: str, config: dict[str, Any]) -> None:
    spec = load(name)["spec"]
    assert spec["workflowConfig"]["workflowChain"] == [TaskName.GENERATE_SPEECH.value]
    assert spec["workflowConfig"]["indexttsConfig"] == config


def test_voice_cloning_example_needs_its_reference_on_a_mounted_volume(
    policy: ValidationPolicy, share: Path
) -> None:
    from tts_api.errors import TTSError

    spec = load("voice-cloning.yaml")["spec"]
    with pytest.raises(TTSError) as caught:
        parse_spec(spec, policy=policy)
    assert caught.value.field == "spec.workflowConfig.indexttsConfig.referenceAudio"
    (share / "reference").mkdir()
    (share / "reference" / "target_voice.wav").write_bytes(b"RIFF")
    assert parse_spec(spec, policy=policy).workflow_config.indextts_config is not None
