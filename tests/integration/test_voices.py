"""The voice library on a real API server with the chart's RBAC: an upload is a TTSVoice object
(``kubectl get ttsvoices``), a voice applied with kubectl is one of the library's, the operator copies
both to the workers, and a deletion either way takes the voice from every door; no 403 anywhere."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import openai
import soundfile
import yaml

from kube_testbed.stack import Stack
from tests.integration.test_examples import kubectl


def clip(seconds: float = 2.0, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)
    soundfile.write(out, tone, rate, format="FLAC")
    return out.getvalue()


def until(check: Callable[[], Any], what: str, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while not (found := check()):
        assert time.monotonic() < deadline, f"{what}: not within {within} s"
        time.sleep(0.2)
    return found


def presets_listed(http: httpx.Client) -> set[str]:
    """The voices a worker lists (the workflow API's list_voice_presets: what the workers can clone)."""
    answer = http.post(
        "/v1/workflows", json={"workflow_config": {"workflow_chain": ["indextts.list_voice_presets"]}}
    )
    assert answer.status_code == 200, answer.text
    return set(answer.json()["presets"])


def speak(stack: Stack, voice: str) -> bytes:
    assert stack.gateway is not None
    with openai.OpenAI(
        base_url=f"{stack.gateway.url}/v1", api_key="unused", max_retries=0, timeout=60
    ) as client:
        return client.audio.speech.create(
            model="synthetic", voice=voice, input="One. Two.", response_format="pcm"
        ).content


def test_an_uploaded_voice_is_a_ttsvoice_object_the_workers_clone(stack: Stack) -> None:
    with stack.client() as http:
        made = http.post(
            "/v1/audio/voices",
            data={"name": "uploaded", "language": "en"},
            files={"file": ("a.flac", clip())},
        )
        assert made.status_code == 201, made.text
        sha = made.json()["sha256"]

        listed = kubectl(stack, "get", "ttsvoices", "-o", "yaml")
        assert listed.returncode == 0, listed.stderr
        (voice,) = [
            item for item in yaml.safe_load(listed.stdout)["items"] if item["metadata"]["name"] == "uploaded"
        ]
        assert voice["spec"]["audio"] == f"voices/{sha}.wav"
        assert voice["spec"]["language"] == "en"
        assert (stack.share_dir / "voices" / f"{sha}.wav").is_file()

        # The operator copies it for the workers: they list it and speak in it.
        until(lambda: "uploaded" in presets_listed(http), "the workers see the uploaded voice")
        assert len(speak(stack, "uploaded")) > 0

        gone = http.delete("/v1/audio/voices/uploaded")
        assert gone.status_code == 200, gone.text
        assert "uploaded" not in kubectl(stack, "get", "ttsvoices", "-o", "name").stdout
        until(lambda: "uploaded" not in presets_listed(http), "the workers forget the deleted voice")


def test_a_voice_applied_with_kubectl_serves_both_apis_until_it_is_deleted(
    stack: Stack, tmp_path: Any
) -> None:
    (stack.share_dir / "voices").mkdir(exist_ok=True)
    (stack.share_dir / "voices" / "applied.wav").write_bytes(clip())
    manifest = tmp_path / "voice.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tts.indextts.io/v1alpha1",
                "kind": "TTSVoice",
                "metadata": {"name": "applied"},
                "spec": {"audio": "/share/voices/applied.wav", "displayName": "Applied"},
            }
        )
    )
    applied = kubectl(stack, "apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    with stack.client() as http:
        voices = {v["name"]: v for v in http.get("/v1/audio/voices").json()["data"]}
        assert voices["applied"]["display_name"] == "Applied"
        assert voices["applied"]["source"] == "library"
        until(lambda: "applied" in presets_listed(http), "the workers see the applied voice")
        workflow = http.post(
            "/v1/workflows",
            json={
                "workflow_config": {
                    "workflow_chain": ["indextts.generate_speech"],
                    "indextts_config": {
                        "text": "Cloned from an applied voice.",
                        "output_path": "/share/workflows/output/applied.wav",
                        "reference_audio": "applied",
                    },
                }
            },
        )
        assert workflow.status_code == 200, workflow.text
        assert workflow.json()["status"] == "success", workflow.json()

        assert kubectl(stack, "delete", "ttsvoice", "applied").returncode == 0
        until(lambda: "applied" not in presets_listed(http), "the workers forget the voice kubectl deleted")
        refused = http.post(
            "/v1/audio/speech", json={"model": "synthetic", "voice": "applied", "input": "Hi."}
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "voice_not_found"


def test_the_api_server_refuses_a_voice_the_model_refuses(stack: Stack, tmp_path: Any) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "tts.indextts.io/v1alpha1",
                "kind": "TTSVoice",
                "metadata": {"name": "bad"},
                "spec": {"audio": "../outside.wav", "emotionAlpha": 3},
            }
        )
    )
    refused = kubectl(stack, "apply", "-f", str(manifest))
    assert refused.returncode != 0
    assert "spec.audio" in refused.stderr
    assert "spec.emotionAlpha" in refused.stderr


def test_a_restarted_operator_drops_voices_deleted_while_it_was_away(stack: Stack) -> None:
    import asyncio

    import nats

    from tts_api.nats_names import VOICES_BUCKET
    from tts_api.voices import VoiceRecord, VoiceSpec
    from voice_library.store import BucketVoices

    async def plant() -> None:
        client = await nats.connect(stack.nats.url)
        try:
            bucket = await client.jetstream().key_value(VOICES_BUCKET)
            stale = VoiceRecord(name="stale", spec=VoiceSpec(audio="voices/stale.wav"))
            await BucketVoices(bucket, stack.namespace).put(stale)
        finally:
            await client.close()

    asyncio.run(plant())
    with stack.client() as http:
        assert "stale" in presets_listed(
            http
        )  # no TTSVoice behind it: left by an operator that missed a deletion
        stack.restart_operator()
        until(lambda: "stale" not in presets_listed(http), "the restarted operator removes the stale voice")
