"""The OpenAI-compatible routes on the local stack (real NATS, a real espeak worker), driven by the
official ``openai`` client as an application would: every format decoded back, streaming, server-sent
events, the models list, and each error through the client's exceptions."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import av
import httpx
import numpy as np
import openai
import pytest
import soundfile

from tests.local.stack import Stack, running_stack

KEY = "speech-test-key"
AudioFormatName = Literal["mp3", "opus", "aac", "flac", "wav", "pcm"]
THREE_SENTENCES = "The first sentence is short. Here comes a second one. And this is the third."


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("openai-stack")
    voices = data / "share" / "voices"
    voices.mkdir(parents=True)
    tone = 0.2 * np.sin(2 * np.pi * 220 * np.arange(2 * 22_050) / 22_050)
    soundfile.write(voices / "alice.wav", tone, 22_050)
    presets = data / "presets.yaml"
    presets.write_text(
        "alice: {name: Alice, reference_audio: /share/voices/alice.wav}\n"
        "ghost: {name: Ghost, reference_audio: /share/voices/ghost.wav}\n"
    )
    # A model configured beside the one local mode serves: requests for it are refused as unserved.
    voices_env = {"TTS_GATEWAY_OPENAI_VOICES": "alloy=default", "TTS_MODELS": "espeak,indextts-2.5"}
    with running_stack(data, "--api-key", KEY, "--presets", str(presets), env=voices_env) as running:
        yield running


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key=KEY, max_retries=0, timeout=120) as speaking:
        yield speaking


def decoded(data: bytes, audio_format: str) -> tuple[np.ndarray, int]:
    """Mono samples (float) and their rate, decoded back with PyAV (pcm: as OpenAI documents it)."""
    if audio_format == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768, 24_000
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray() for frame in container.decode(stream)]
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.channels
    assert channels == 1
    samples = np.concatenate([frame.reshape(-1) for frame in frames]).astype(np.float32)
    return samples, rate


def workflow_result(stack: Stack, workflow_id: str) -> dict[str, object]:
    with stack.client(**{"X-API-Key": KEY}) as http:
        answer = http.get(f"/v1/workflows/{workflow_id}")
    assert answer.status_code == 200, answer.text
    body: dict[str, object] = answer.json()
    return body


@pytest.mark.parametrize("audio_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_each_format_decodes_to_the_speech_the_workflow_made(
    client: openai.OpenAI, stack: Stack, audio_format: AudioFormatName
) -> None:
    raw = client.audio.speech.with_raw_response.create(
        model="tts-1", voice="default", input=THREE_SENTENCES, response_format=audio_format
    )
    samples, rate = decoded(raw.content, audio_format)
    assert rate == (48_000 if audio_format == "opus" else 24_000)  # Opus decodes at 48 kHz
    assert float(np.abs(samples).max()) > 0.05, "speech, not silence"
    result = workflow_result(stack, raw.headers["x-workflow-id"])
    assert result["output_path"] is None  # streamed: no file kept
    assert result["sample_rate"] == 24_000
    # Codecs pad the start and the end a little; the speech itself is all there.
    assert len(samples) / rate == pytest.approx(float(result["duration"]), abs=0.12)  # type: ignore[arg-type]
    assert raw.headers["content-type"].startswith(
        {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac"}.get(
            audio_format, f"audio/{audio_format}"
        )
    )


def test_speed_changes_the_length_and_an_openai_voice_maps_to_a_library_voice(
    client: openai.OpenAI,
) -> None:
    lengths = {}
    for speed in (0.5, 1.0, 2.0, 4.0):
        data = client.audio.speech.create(
            model="espeak", voice="alloy", input=THREE_SENTENCES, response_format="pcm", speed=speed
        ).content
        lengths[speed] = len(data) / 2 / 24_000
    assert lengths[0.5] == pytest.approx(2 * lengths[1.0], rel=0.15)
    assert lengths[2.0] == pytest.approx(lengths[1.0] / 2, rel=0.15)
    assert lengths[4.0] == pytest.approx(lengths[1.0] / 4, rel=0.2)  # espeak's rate, then a tempo change


def test_audio_streams_in_several_chunks_before_the_end(client: openai.OpenAI) -> None:
    text = " ".join(f"This is sentence number {n}, spoken on its own." for n in range(1, 9))
    arrivals: list[float] = []
    sizes: list[int] = []
    with client.audio.speech.with_streaming_response.create(
        model="espeak", voice="default", input=text, response_format="pcm"
    ) as response:
        assert response.headers["content-type"] == "audio/pcm"
        for chunk in response.iter_bytes():
            arrivals.append(time.monotonic())
            sizes.append(len(chunk))
    assert len(sizes) > 1, "the audio came in one piece, not as it was made"
    assert sum(sizes) / 2 / 24_000 > 3.0  # eight sentences of speech


def test_server_sent_events_carry_the_audio_then_done(client: openai.OpenAI) -> None:
    events = []
    with client.audio.speech.with_streaming_response.create(
        model="espeak", voice="default", input=THREE_SENTENCES, response_format="wav", stream_format="sse"
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line.removeprefix("data: ")))
    kinds = [event["type"] for event in events]
    assert kinds[-1] == "speech.audio.done"
    assert set(kinds[:-1]) == {"speech.audio.delta"}
    assert set(events[-1]["usage"]) == {"input_tokens", "output_tokens", "total_tokens"}
    audio = b"".join(base64.b64decode(event["audio"]) for event in events[:-1])
    samples, rate = decoded(audio, "wav")
    assert rate == 24_000
    assert len(samples) / rate > 2.0


def test_the_models_list_names_the_engine_with_its_capacity(client: openai.OpenAI) -> None:
    models = {model.id: model for model in client.models.list()}
    assert set(models) == {"espeak"}
    assert models["espeak"].object == "model"
    assert models["espeak"].model_extra == {
        "ready": True,
        "workers": 1,
        "ready_workers": 1,
        "idle_workers": 1,
        "languages": ["en", "zh"],
    }


def test_a_request_names_the_served_model_and_a_known_model_no_worker_serves_is_404(
    client: openai.OpenAI,
) -> None:
    with client.audio.speech.with_streaming_response.create(
        model="espeak", voice="default", input="Hello.", response_format="wav"
    ) as spoken:
        workflow = spoken.headers["X-Workflow-Id"]
        assert len(decoded(spoken.read(), "wav")[0]) > 0
    # The stream ends as the last audio is sent; the record says it succeeded a moment later.
    deadline = time.monotonic() + 20
    while (record := client.get(f"/workflows/{workflow}", cast_to=httpx.Response)).status_code == 202:
        assert time.monotonic() < deadline, record.text
        time.sleep(0.05)
    assert record.json()["parameters"]["model"] == "espeak"
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.speech.create(model="indextts-2.5", voice="default", input="Hello.")
    assert missing.value.code == "model_not_found"
    assert "'indextts-2.5' is not served here; use one of espeak, gpt-4o-mini-tts" in missing.value.message


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"voice": "nobody"}, "voice", "no voice 'nobody'"),
        ({"voice": "nova"}, "voice", "TTS_GATEWAY_OPENAI_VOICES=nova="),
        ({"response_format": "ogg"}, "response_format", "mp3, opus, aac, flac, wav, pcm"),
        ({"input": ""}, "input", "must not be empty"),
        ({"input": "   "}, "input", "only whitespace"),
        ({"input": "x" * 4097}, "input", "longer than 4096"),
        ({"speed": 5.0}, "speed", "0.25 to 4.0"),
        ({"speed": 0.1}, "speed", "0.25 to 4.0"),
        ({"stream_format": "chunks"}, "stream_format", "audio or sse"),
    ],
    ids=[
        "unknown-voice",
        "unmapped-openai-voice",
        "format",
        "empty",
        "blank",
        "too-long",
        "fast",
        "slow",
        "sf",
    ],
)
def test_bad_requests_are_400_in_openais_error_body(
    client: openai.OpenAI, fields: dict[str, object], param: str, says: str
) -> None:
    body = {"model": "tts-1", "voice": "default", "input": "Hello.", **fields}
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(**body)  # type: ignore[arg-type]
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert says in error["message"]


def test_a_library_voice_speaks_and_one_whose_audio_is_gone_is_refused_naming_the_voice(
    client: openai.OpenAI,
) -> None:
    spoken = client.audio.speech.create(model="tts-1", voice="alice", input="Hello.", response_format="wav")
    samples, _ = decoded(spoken.content, "wav")
    assert len(samples) > 0
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.speech.create(model="tts-1", voice={"id": "ghost"}, input="Hello.")
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["param"] == "voice"
    assert "/share/voices/ghost.wav does not exist" in error["message"]


def test_an_unknown_model_is_404_and_a_wrong_key_401(client: openai.OpenAI, stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.speech.create(model="whisper-9", voice="default", input="Hello.")
    assert missing.value.code == "model_not_found"
    with openai.OpenAI(base_url=f"{stack.url}/v1", api_key="wrong", max_retries=0) as stranger:
        with pytest.raises(openai.AuthenticationError) as refused:
            stranger.audio.speech.create(model="tts-1", voice="default", input="Hello.")
        assert refused.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            stranger.models.list()


def test_a_client_that_goes_away_cancels_its_workflow_and_frees_the_worker(tmp_path: Path) -> None:
    slow = {"TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "30"}
    with running_stack(tmp_path, "--engine", "synthetic", env=slow) as stack:
        text = " ".join(f"Sentence {n}." for n in range(10))  # ten segments of 3 s each
        with httpx.Client(base_url=stack.url, timeout=60) as http:
            with http.stream(
                "POST",
                "/v1/audio/speech",
                json={"model": "synthetic", "voice": "default", "input": text, "response_format": "pcm"},
            ) as response:
                assert response.status_code == 200
                workflow_id = response.headers["x-workflow-id"]
                first = next(response.iter_bytes())
                assert first
            # Gone: the gateway deletes the workflow and the worker drops the job.
            deadline = time.monotonic() + 20
            while http.get(f"/v1/workflows/status/{workflow_id}").status_code != 404:
                assert time.monotonic() < deadline, "the abandoned workflow is still there"
                time.sleep(0.2)
            while http.get("/api/v1/monitoring/statistics").json()["workers"]["active"] != 0:
                assert time.monotonic() < deadline, "the worker still holds the abandoned job"
                time.sleep(0.2)


def test_the_voices_are_listed_and_a_presets_clip_is_served(stack: Stack) -> None:
    with stack.client(**{"Authorization": f"Bearer {KEY}"}) as http:
        listed = http.get("/v1/audio/voices")
        assert listed.status_code == 200
        voices = {voice["name"]: voice for voice in listed.json()["data"]}
        assert set(voices) == {"default", "alice", "ghost"}
        assert voices["default"]["source"] == "engine"
        assert voices["default"]["sample_url"] is None
        assert voices["alice"] | {"sample_url": None} == {
            "name": "alice",
            "display_name": "Alice",
            "description": "",
            "language": "",
            "gender": "",
            "source": "preset",
            "sample_url": None,
            "sha256": None,
            "duration_seconds": None,
            "emotion_text": None,
            "emotion_alpha": None,
        }
        clip = http.get(voices["alice"]["sample_url"])
        assert clip.status_code == 200
        assert clip.headers["content-type"] == "audio/wav"
        assert clip.content == (stack.share / "voices" / "alice.wav").read_bytes()
        for name, says in (
            ("ghost", "not on the shared volume"),
            ("default", "no reference clip"),
            ("x", "no voice"),
        ):
            missing = http.get(f"/v1/audio/voices/{name}/sample")
            assert missing.status_code == 404
            assert says in missing.json()["error"]["message"]
            assert missing.json()["error"]["code"] == "voice_not_found"


def test_where_pods_scale_from_zero_a_configured_model_with_no_worker_waits_for_one(tmp_path: Path) -> None:
    """TTS_GATEWAY_WAIT_FOR_WORKERS (the chart's autoscaling): the request is taken, its job waits for
    a worker of its model, and when none comes within the operator's wait the answer says why."""
    env = {
        "TTS_MODELS": "espeak,indextts-2.5",
        "TTS_GATEWAY_WAIT_FOR_WORKERS": "true",
        "TTS_OPERATOR_AUTOSCALING": "true",
        "TTS_OPERATOR_MAX_QUEUE_SECONDS": "3",
        "TTS_OPERATOR_TICK_SECONDS": "0.5",
    }
    with (
        running_stack(tmp_path / "data", "--api-key", KEY, env=env) as scaled,
        openai.OpenAI(base_url=f"{scaled.url}/v1", api_key=KEY, max_retries=0, timeout=60) as speaking,
    ):
        began = time.monotonic()
        with pytest.raises(openai.InternalServerError) as waited:
            speaking.audio.speech.create(model="indextts-2.5", voice="default", input="Hello.")
        with pytest.raises(openai.NotFoundError) as unknown:
            speaking.audio.speech.create(model="indextts-9", voice="default", input="Hello.")
    assert waited.value.status_code == 503
    assert waited.value.code == "gpu_unavailable"
    assert "no inference worker of model indextts-2.5 started within 3 s" in waited.value.message
    assert time.monotonic() - began >= 3  # it waited for a worker, not refused at once
    assert "use one of espeak, gpt-4o-mini-tts" in unknown.value.message
    assert "indextts-2.5" in unknown.value.message
