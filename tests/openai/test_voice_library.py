"""The voice library on the local stack (real NATS, a real espeak worker): a clip uploaded as a
client would, stored once under its content's hash, spoken in through both APIs and listed by the
workflow API's ``list_voice_presets``; every refusal a client can cause, in OpenAI's error body."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Iterator
from typing import Any

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile

from tests.local.stack import Stack, running_stack

KEY = "voice-test-key"
UPLOAD_LIMIT = 1_500_000


def tone(seconds: float, rate: int = 22_050, frequency: float = 220.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def flac_clip(seconds: float, rate: int = 22_050) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, tone(seconds, rate), rate, format="FLAC")
    return out.getvalue()


def soundfile_bytes(samples: np.ndarray, rate: int = 22_050) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV")
    return out.getvalue()


def mp3_clip(seconds: float, rate: int = 44_100) -> bytes:
    """A stereo MP3, encoded by FFmpeg: what a phone or a browser would send."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=rate, layout="stereo")
        samples = np.stack([tone(seconds, rate), tone(seconds, rate, 330.0)])
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("voice-stack")
    voices = data / "share" / "voices"
    voices.mkdir(parents=True)
    soundfile.write(voices / "alice.wav", tone(2), 22_050)
    presets = data / "presets.yaml"
    presets.write_text("alice: {name: Alice, reference_audio: /share/voices/alice.wav}\n")
    env = {"TTS_GATEWAY_VOICE_UPLOAD_MAX_BYTES": str(UPLOAD_LIMIT)}
    with running_stack(data, "--api-key", KEY, "--presets", str(presets), env=env) as running:
        yield running


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    with stack.client(**{"Authorization": f"Bearer {KEY}"}) as client:
        client.timeout = httpx.Timeout(120)
        yield client


def upload(http: httpx.Client, name: str, clip: bytes, filename: str = "clip.flac", **fields: str) -> Any:
    return http.post("/v1/audio/voices", data={"name": name, **fields}, files={"file": (filename, clip)})


def refusal(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_an_uploaded_voice_is_stored_once_by_its_hash_and_listed(http: httpx.Client, stack: Stack) -> None:
    clip = mp3_clip(3.0)
    made = upload(http, "narrator", clip, "narrator.mp3", display_name="The Narrator", language="en")
    assert made.status_code == 201, made.text
    voice = made.json()
    assert voice["name"] == "narrator"
    assert voice["source"] == "library"
    assert voice["display_name"] == "The Narrator"
    assert voice["language"] == "en"
    assert voice["duration_seconds"] == pytest.approx(3.0, abs=0.1)
    stored = stack.share / "voices" / f"{voice['sha256']}.wav"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == voice["sha256"]
    samples, rate = soundfile.read(stored)
    assert rate == 44_100
    assert samples.ndim == 1  # made mono

    again = upload(http, "narrator-two", clip, "copy.mp3")
    assert again.status_code == 201, again.text
    assert again.json()["sha256"] == voice["sha256"]
    assert sorted(p.name for p in (stack.share / "voices").glob("*.wav")).count(stored.name) == 1

    listed = {v["name"]: v for v in http.get("/v1/audio/voices").json()["data"]}
    assert {"default", "alice", "narrator", "narrator-two"} <= set(listed)
    assert listed["narrator"]["source"] == "library"
    sample = http.get(listed["narrator"]["sample_url"])
    assert sample.status_code == 200
    assert sample.content == stored.read_bytes()


def test_both_apis_speak_in_an_uploaded_voice(http: httpx.Client, stack: Stack) -> None:
    assert upload(http, "speaker", flac_clip(2.0), emotion_text="calm and warm").status_code == 201
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=KEY, max_retries=0, timeout=120) as client:
        speech = client.audio.speech.with_raw_response.create(
            model="tts-1", voice="speaker", input="Hello from the library.", response_format="wav"
        )
    samples, rate = soundfile.read(io.BytesIO(speech.content))
    assert rate == 24_000
    assert len(samples) > rate // 4
    # The audio ends before the worker's completion is recorded: wait for the record.
    deadline = time.monotonic() + 30
    while (workflow := http.get(f"/v1/workflows/{speech.headers['x-workflow-id']}").json())[
        "status"
    ] != "success":
        assert time.monotonic() < deadline, workflow
        time.sleep(0.1)

    made = http.post(
        "/v1/workflows",
        json={
            "workflow_config": {
                "workflow_chain": ["indextts.generate_speech"],
                "indextts_config": {
                    "text": "The workflow API clones it too.",
                    "output_path": "/share/workflows/output/library-voice.wav",
                    "reference_audio": "speaker",
                },
            }
        },
    )
    assert made.status_code == 200, made.text
    assert made.json()["status"] == "success", made.json()
    assert (stack.share / "workflows" / "output" / "library-voice.wav").is_file()

    listed = http.post(
        "/v1/workflows", json={"workflow_config": {"workflow_chain": ["indextts.list_voice_presets"]}}
    )
    assert listed.status_code == 200, listed.text
    presets = listed.json()["presets"]
    assert {"alice", "speaker"} <= set(presets)
    assert presets["speaker"]["name"] == "speaker"


def test_a_deleted_voice_is_gone_from_both_apis(http: httpx.Client) -> None:
    assert upload(http, "short-lived", flac_clip(1.5)).status_code == 201
    gone = http.delete("/v1/audio/voices/short-lived")
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"id": "short-lived", "object": "voice", "deleted": True}
    assert refusal(http.delete("/v1/audio/voices/short-lived"), 404)["code"] == "voice_not_found"
    assert "short-lived" not in {v["name"] for v in http.get("/v1/audio/voices").json()["data"]}
    speech = http.post("/v1/audio/speech", json={"model": "tts-1", "voice": "short-lived", "input": "Hi."})
    assert refusal(speech, 400)["code"] == "voice_not_found"
    workflow = http.post(
        "/v1/workflows",
        json={
            "workflow_config": {
                "workflow_chain": ["indextts.generate_speech"],
                "indextts_config": {
                    "text": "Hi.",
                    "output_path": "/share/workflows/output/gone.wav",
                    "reference_audio": "short-lived",
                },
            }
        },
    )
    assert workflow.status_code == 400, workflow.text
    assert "short-lived" in workflow.json()["error"]
    # The name is free again.
    assert upload(http, "short-lived", flac_clip(1.5)).status_code == 201


def test_a_preset_is_neither_overwritten_nor_deleted(http: httpx.Client) -> None:
    for name in ("alice", "default"):
        error = refusal(upload(http, name, flac_clip(2.0)), 409)
        assert error["code"] == "voice_exists"
        assert error["param"] == "name"
    assert refusal(http.delete("/v1/audio/voices/alice"), 409)["code"] == "voice_is_preset"
    assert upload(http, "taken", flac_clip(2.0)).status_code == 201
    assert refusal(upload(http, "taken", flac_clip(2.5)), 409)["code"] == "voice_exists"


@pytest.mark.parametrize(
    ("name", "clip", "says", "param"),
    [
        ("Bad_Name", flac_clip(2.0), "not a voice name", "name"),
        ("-dash", flac_clip(2.0), "not a voice name", "name"),
        ("x" * 64, flac_clip(2.0), "not a voice name", "name"),
        ("too-short", flac_clip(0.5), "0.50 s long", "file"),
        ("too-long", flac_clip(31.0, rate=8_000), "longer than 30 s", "file"),
        ("not-audio", b"this is text, not a recording " * 20, "not an audio file", "file"),
        ("empty", b"", "empty", "file"),
        ("silent", soundfile_bytes(np.zeros(22_050 * 2, dtype=np.float32)), "silent", "file"),
    ],
)
def test_a_clip_or_name_that_cannot_be_a_voice_is_refused(
    http: httpx.Client, name: str, clip: bytes, says: str, param: str
) -> None:
    error = refusal(upload(http, name, clip), 400)
    assert says in error["message"]
    assert error["param"] == param
    assert http.get(f"/v1/audio/voices/{name}/sample").status_code in (404, 400)


def test_a_malformed_form_is_refused_naming_what_to_send(http: httpx.Client, stack: Stack) -> None:
    no_file = http.post("/v1/audio/voices", data={"name": "nofile"})
    assert refusal(no_file, 400)["param"] == "file"
    no_name = http.post("/v1/audio/voices", files={"file": ("a.flac", flac_clip(2.0))})
    assert refusal(no_name, 400)["param"] == "name"
    unknown = upload(http, "extra", flac_clip(2.0), colour="blue")
    assert refusal(unknown, 400)["param"] == "colour"
    as_json = http.post("/v1/audio/voices", json={"name": "json", "file": "x"})
    assert "multipart/form-data" in refusal(as_json, 400)["message"]
    alpha = upload(http, "strong", flac_clip(2.0), emotion_alpha="2")
    assert refusal(alpha, 400)["param"] == "emotion_alpha"
    big = upload(http, "big", b"\0" * (UPLOAD_LIMIT + 1))
    assert "TTS_GATEWAY_VOICE_UPLOAD_MAX_BYTES" in refusal(big, 413)["message"]
    with stack.client() as keyless:
        assert refusal(upload(keyless, "nokey", flac_clip(2.0)), 401)["code"] == "invalid_api_key"
        assert refusal(keyless.delete("/v1/audio/voices/taken"), 401)["code"] == "invalid_api_key"
    for name in ("nofile", "extra", "json", "strong", "big", "nokey"):
        assert http.get(f"/v1/audio/voices/{name}/sample").status_code == 404


def test_a_voice_brings_its_default_emotion_unless_the_request_gives_instructions() -> None:
    from gateway.openai_speech import read_speech_request, speech_spec
    from tts_api.policy import ValidationPolicy
    from voice_library.library import LibraryVoice

    voice = LibraryVoice(
        name="calm",
        display_name="Calm",
        description="",
        language="",
        gender="",
        audio="voices/" + "0" * 64 + ".wav",
        source="library",
        emotion_text="calm and warm",
        emotion_alpha=0.4,
    )
    policy = ValidationPolicy(voice_presets=frozenset({"alice"}), check_disk=False)
    plain = read_speech_request({"model": "tts-1", "voice": "calm", "input": "Hi."})
    config = speech_spec(plain, policy, voice, timeout_seconds=60).workflow_config.indextts_config
    assert config is not None
    assert (config.reference_audio, config.emotion_text, config.emotion_alpha) == (
        "calm",
        "calm and warm",
        0.4,
    )
    told = read_speech_request({"model": "tts-1", "voice": "calm", "input": "Hi.", "instructions": "angry"})
    config = speech_spec(told, policy, voice, timeout_seconds=60).workflow_config.indextts_config
    assert config is not None
    assert config.emotion_text == "angry"
    engine = speech_spec(plain, policy, None, timeout_seconds=60).workflow_config.indextts_config
    assert engine is not None
    assert (engine.reference_audio, engine.emotion_text) == (None, None)
