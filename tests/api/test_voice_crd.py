"""The TTSVoice CRD: generated from the voice model without drift, valid for Kubernetes, structural, and
refusing what the model refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError

from tests.api.apiserver_schema import schema_errors, structural_violations
from tts_api import crd
from tts_api.voices import VoiceSpec, clip_path

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / crd.VOICE_CRD_FILE
SHA = "ab" * 32


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(CRD_PATH.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def schema(committed: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = committed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return found


def test_committed_voice_crd_matches_the_model_and_the_chart_links_it() -> None:
    assert CRD_PATH.read_text(encoding="utf-8") == crd.render_voice_crd(), (
        "crds/ drifted from the models: run `make crd` and commit the result"
    )
    in_chart = REPO / "charts" / "indextts" / "crds" / CRD_PATH.name
    assert in_chart.is_symlink()
    assert in_chart.resolve() == CRD_PATH.resolve()


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])
def test_voice_crd_is_valid_for_kubernetes(committed: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(committed, version, strict=True)


def test_voice_schema_is_structural_and_names_the_kind(
    schema: dict[str, Any], committed: dict[str, Any]
) -> None:
    assert structural_violations(schema) == []
    names = committed["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == ("TTSVoice", "ttsvoices", ["ttsv"])
    assert "subresources" not in committed["spec"]["versions"][0]


def test_the_api_server_takes_a_voice_the_model_takes(schema: dict[str, Any]) -> None:
    spec = {"audio": clip_path(SHA), "sha256": SHA, "displayName": "Narrator", "emotionAlpha": 0.3}
    body = {
        "apiVersion": "tts.indextts.io/v1alpha1",
        "kind": "TTSVoice",
        "metadata": {"name": "n"},
        "spec": spec,
    }
    assert schema_errors(schema, body) == []
    assert VoiceSpec.model_validate(spec).display_name == "Narrator"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "audio"),
        ({"audio": "voices/a.mp3"}, "audio"),
        ({"audio": "../etc/a.wav"}, "audio"),
        ({"audio": "voices/a.wav", "sha256": "not-hex"}, "sha256"),
        ({"audio": "voices/a.wav", "emotionAlpha": 1.5}, "emotionAlpha"),
        ({"audio": "voices/a.wav", "durationSeconds": -1}, "durationSeconds"),
    ],
)
def test_the_api_server_and_the_model_refuse_the_same_voice(
    schema: dict[str, Any], spec: dict[str, Any], field: str
) -> None:
    body = {
        "apiVersion": "tts.indextts.io/v1alpha1",
        "kind": "TTSVoice",
        "metadata": {"name": "n"},
        "spec": spec,
    }
    assert any(field in error for error in schema_errors(schema, body)), schema_errors(schema, body)
    with pytest.raises(ValidationError):
        VoiceSpec.model_validate(spec)


def test_cli_writes_and_checks_the_voice_crd(tmp_path: Path) -> None:
    from tts_cli.main import main

    target = tmp_path / "voices.yaml"
    assert main(["crd", "--kind", "voice", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == crd.render_voice_crd()
    assert main(["crd", "--kind", "voice", "--check", str(target)]) == 0
    assert main(["crd", "--check", str(target)]) == 1  # not the TTSWorkflow CRD
