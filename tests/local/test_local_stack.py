"""The whole stack on one machine, as `make dev` runs it: the workflow API's examples give real speech.

Real parts throughout: the `indextts-k8s local` command, its embedded nats-server, the espeak
worker, the operator's runner, the gateway on HTTP.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile

from tests.gateway.conftest import ID_ROUTES, not_found_body
from tests.gateway.reference_shapes import (
    REFERENCE_GPU_LOCK,
    REFERENCE_HEALTH,
    REFERENCE_MODEL_INFO,
    REFERENCE_PRESETS,
    REFERENCE_SPEECH,
    shape_errors,
)
from tests.local.stack import Stack, running_stack, start_stack

OPTIONAL_PARAMETERS = frozenset({"parameters.reference_audio", "parameters.emotion_vector"})


def speech(text: str, output_path: str, **config: Any) -> dict[str, Any]:
    return {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {"text": text, "output_path": output_path, **config},
        },
    }


def task(name: str) -> dict[str, Any]:
    return {"video_path": "/app/videos/health_check.mp4", "workflow_config": {"workflow_chain": [name]}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("local")
    presets = data / "presets.yaml"
    presets.write_text(
        "default:\n  name: Default Voice\n  description: 默认语音\n  language: zh-CN\n  gender: female\n"
        "  reference_audio: /share/voices/default.wav\n",
        encoding="utf-8",
    )
    with running_stack(data, "--presets", str(presets)) as running:
        yield running


def assert_real_wav(stack: Stack, body: dict[str, Any]) -> None:
    wav = stack.share / body["output_path"].removeprefix("/share/")
    info = soundfile.info(str(wav))
    assert info.samplerate == body["sample_rate"] == 22050
    assert info.channels == 1
    assert info.duration == pytest.approx(body["duration"], abs=0.01)
    assert body["duration"] > 0.5  # a sentence of speech, not an empty file


def test_documented_example_1_basic_speech(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post(
            "/v1/workflows",
            json=speech("你好，这是IndexTTS2生成的语音。", "/share/workflows/output/hello.wav"),
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert shape_errors(body, REFERENCE_SPEECH, nullable=OPTIONAL_PARAMETERS) == []
    assert body["text_length"] == len("你好，这是IndexTTS2生成的语音。")
    assert body["model_info"]["model_type"] == "espeak-ng"
    assert_real_wav(stack, body)


def test_documented_example_2_voice_cloning_speaks_and_warns(stack: Stack) -> None:
    with stack.client() as client:
        made = client.post("/v1/workflows", json=speech("参考", "/share/workflows/output/source.wav")).json()
        reference = stack.share / "reference" / "target_voice.wav"
        reference.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(stack.share / "workflows" / "output" / "source.wav", reference)
        response = client.post(
            "/v1/workflows",
            json=speech(
                "这是使用音色克隆生成的语音。",
                "/share/workflows/output/cloned.wav",
                reference_audio="/share/reference/target_voice.wav",
            ),
        )
    assert made["status"] == "success"
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameters"]["reference_audio"] == "/share/reference/target_voice.wav"
    assert any("cannot clone" in warning for warning in body["warnings"])
    assert_real_wav(stack, body)


def test_documented_example_3_emotion_and_example_4_status(stack: Stack) -> None:
    vector = [0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0]
    with stack.client() as client:
        response = client.post(
            "/v1/workflows",
            json=speech(
                "今天天气真好，心情很愉快！", "/share/workflows/output/happy.wav", emotion_vector=vector
            ),
        )
        body = response.json()
        status = client.get(f"/v1/workflows/status/{body['workflow_id']}").json()
    assert response.status_code == 200, response.text
    assert body["parameters"]["emotion_vector"] == vector
    assert_real_wav(stack, body)
    assert (status["status"], status["progress"]) == ("succeeded", 100)
    assert status["stages"][0]["status"] == "succeeded"
    assert status["stages"][0]["output"]["output_path"] == "/share/workflows/output/happy.wav"


@pytest.mark.parametrize(
    ("name", "reference", "check"),
    [
        (
            "indextts.health_check",
            REFERENCE_HEALTH,
            lambda b: (b["status"], b["model"], b["gpu"]["available"]) == ("healthy", "ready", False),
        ),
        (
            "indextts.get_model_info",
            REFERENCE_MODEL_INFO,
            lambda b: b["model_info"]["capabilities"]["voice_cloning"] is False,
        ),
        (
            "indextts.list_voice_presets",
            REFERENCE_PRESETS,
            lambda b: (b["total_count"], b["presets"]["default"]["gender"]) == (1, "female"),
        ),
    ],
)
def test_the_other_three_tasks(name: str, reference: dict[str, Any], check: Any, stack: Stack) -> None:
    with stack.client() as client:
        response = client.post("/v1/workflows", json=task(name))
    assert response.status_code == 200, response.text
    assert shape_errors(response.json(), reference, nullable=frozenset({"gpu.name"})) == []  # no GPU here
    assert check(response.json())


def test_async_request_then_status_then_audio(stack: Stack) -> None:
    with stack.client() as client:
        accepted = client.post(
            "/v1/workflows",
            params={"async": "true"},
            json=speech("Hello from the local stack.", "workflows/output/async.wav"),
        )
        assert accepted.status_code == 202
        workflow_id = accepted.json()["workflow_id"]
        status = _wait_finished(client, workflow_id)
        audio = client.get(f"/v1/workflows/{workflow_id}/audio")
    assert status["status"] == "succeeded"
    assert audio.status_code == 200
    assert audio.headers["content-type"] == "audio/wav"
    assert audio.content == (stack.share / "workflows" / "output" / "async.wav").read_bytes()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (speech("   ", "/share/workflows/output/a.wav"), "workflow_config.indextts_config.text"),
        (speech("hi", "/share/../etc/a.wav"), "workflow_config.indextts_config.output_path"),
        (
            speech("hi", "/share/workflows/output/a.wav", reference_audio="/share/missing.wav"),
            "workflow_config.indextts_config.reference_audio",
        ),
        (
            speech("hi", "/share/workflows/output/a.wav", reference_audio="narrator"),
            "workflow_config.indextts_config.reference_audio",
        ),
        (
            speech("hi", "/share/workflows/output/a.wav", emotion_alpha=2),
            "workflow_config.indextts_config.emotion_alpha",
        ),
        (
            speech("hi", "/share/workflows/output/a.wav", emotion_vector=[0.1] * 7),
            "workflow_config.indextts_config.emotion_vector",
        ),
        (task("indextts.unknown"), "workflow_config.workflow_chain[0]"),
        # Local mode serves its engine's model (espeak here) and no other.
        (
            speech("hi", "/share/workflows/output/a.wav", model="indextts-2.5"),
            "workflow_config.indextts_config.model",
        ),
    ],
)
def test_bad_input_is_400_and_runs_nothing(body: dict[str, Any], field: str, stack: Stack) -> None:
    with stack.client() as client:
        response = client.post("/v1/workflows", json=body)
    assert response.status_code == 400
    error = response.json()
    assert (error["status"], error["error_code"], error["field"]) == ("error", "INVALID_INPUT", field)


def test_unknown_workflow_and_garbage(stack: Stack) -> None:
    with stack.client() as client:
        for method, path in ID_ROUTES:
            unknown = client.request(method, path.format(id="wf-nope"))
            assert unknown.status_code == 404, (method, path, unknown.text)
            assert unknown.json() == not_found_body("wf-nope")
            malformed = client.request(method, path.format(id="a%20b"))  # not a NATS key: no 500
            assert malformed.status_code == 400, (method, path, malformed.text)
            error = malformed.json()
            assert (error["error_code"], error["field"]) == ("INVALID_INPUT", "workflow_id")
        garbage = client.post("/v1/workflows", content=b"{{{", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400
    assert garbage.json()["error_code"] == "INVALID_INPUT"


def _wait_finished(client: httpx.Client, workflow_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(f"/v1/workflows/status/{workflow_id}").json()
        if status.get("status") in {"succeeded", "failed", "cancelled"} or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


# --- a slow engine, an API key: monitoring while jobs run, cancellation ---------------------------

KEY = {"X-API-Key": "local-secret"}


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("slow"),
        "--engine",
        "synthetic",
        "--api-key",
        "local-secret",
        env={"TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "3"},
    ) as running:
        yield running


def test_api_key_is_required_but_not_for_liveness(slow_stack: Stack) -> None:
    with slow_stack.client() as anonymous, slow_stack.client(**KEY) as keyed:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.post("/v1/workflows", json=task("indextts.health_check")).status_code == 401
        assert anonymous.get("/api/v1/monitoring/statistics").status_code == 401
        assert keyed.get("/api/v1/monitoring/statistics").status_code == 200


def test_monitoring_shows_the_job_holding_the_gpu_slot(slow_stack: Stack) -> None:
    with slow_stack.client(**KEY) as client:
        accepted = client.post(
            "/v1/workflows",
            params={"async": "1"},
            json=speech("slow speech", "/share/workflows/output/slow.wav"),
        ).json()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lock = client.get("/api/v1/monitoring/gpu-lock/health").json()
            if lock["active_locks"] == 1:
                break
            time.sleep(0.05)
        heartbeats = client.get("/api/v1/monitoring/heartbeat/all").json()
        stats = client.get("/api/v1/monitoring/statistics").json()
        done = _wait_finished(client, accepted["workflow_id"])
    assert shape_errors(lock, REFERENCE_GPU_LOCK) == []
    assert (lock["total_locks"], lock["active_locks"]) == (1, 1)
    assert lock["locks"][0]["workflow_id"] == accepted["workflow_id"]
    assert lock["locks"][0]["locked"] is True
    running = [t for t in heartbeats["tasks"] if t["workflow_id"] == accepted["workflow_id"]]
    assert running
    assert running[0]["worker_id"].endswith("/cpu0")
    assert stats["workers"] == {"total": 1, "active": 1, "idle": 0}
    assert done["status"] == "succeeded"


def test_deleting_a_running_workflow_cancels_its_job(slow_stack: Stack) -> None:
    with slow_stack.client(**KEY) as client:
        accepted = client.post(
            "/v1/workflows",
            params={"async": "1"},
            json=speech("to be cancelled", "/share/workflows/output/cancelled.wav"),
        ).json()
        workflow_id = accepted["workflow_id"]
        deadline = time.monotonic() + 20
        while client.get(f"/v1/workflows/status/{workflow_id}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
        assert client.delete(f"/v1/workflows/{workflow_id}").status_code == 200
        while client.get(f"/v1/workflows/status/{workflow_id}").status_code != 404:
            assert time.monotonic() < deadline, "the deleted workflow stayed"
            time.sleep(0.05)
        # The slot is free again well before the 3 s job would have ended on its own.
        while client.get("/api/v1/monitoring/gpu-lock/health").json()["active_locks"] != 0:
            assert time.monotonic() < deadline, "the cancelled job kept its slot"
            time.sleep(0.05)
    assert not (slow_stack.share / "workflows" / "output" / "cancelled.wav").exists()
    assert "cancel" in slow_stack.log_text().lower()


def test_make_dev_runs_this_command() -> None:
    makefile = (Path(__file__).resolve().parents[2] / "Makefile").read_text(encoding="utf-8")
    assert "$(BIN)/indextts-k8s local" in makefile.split("\ndev:", 1)[1].split("\n\n", 1)[0]


def test_a_crashed_stack_resumes_its_work_on_restart(tmp_path: Path) -> None:
    """SIGKILL the whole stack mid-job: its NATS goes with it, and the next start finishes the job."""
    env = {
        "TTS_WORKER_SYNTHETIC_DELAY_SECONDS": "2",
        "TTS_WORKER_ACK_WAIT_SECONDS": "2",
        "TTS_WORKER_HEARTBEAT_SECONDS": "0.5",
    }
    stack = start_stack(tmp_path, "--engine", "synthetic", env=env)
    with stack.client() as client:
        workflow_id = client.post(
            "/v1/workflows",
            params={"async": "1"},
            json=speech("survive a crash", "/share/workflows/output/survivor.wav"),
        ).json()["workflow_id"]
        deadline = time.monotonic() + 20
        while client.get(f"/v1/workflows/status/{workflow_id}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.05)
    stack.process.kill()
    stack.process.wait(10)
    time.sleep(0.5)
    assert not any("nats-server" in line and str(tmp_path) in line for line in _processes()), (
        "NATS outlived it"
    )

    with running_stack(tmp_path, "--engine", "synthetic", env=env) as restarted, restarted.client() as client:
        status = _wait_finished(client, workflow_id, timeout=60)
    assert status["status"] == "succeeded", status
    assert (tmp_path / "share" / "workflows" / "output" / "survivor.wav").exists()


def _processes() -> list[str]:
    import subprocess

    listing = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)  # noqa: S607
    return listing.stdout.splitlines()


def readme_command(starting: str) -> str:
    """The README's shell command that starts with ``starting`` (continued lines joined)."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    joined = text.replace("\\\n", " ")
    return next(line.strip() for line in joined.splitlines() if line.strip().startswith(starting))


def test_the_readmes_openai_speech_command_gives_an_mp3(tmp_path: Path) -> None:
    """On a stack as `make dev` starts it (no presets: `default` is the engine's own voice)."""
    import subprocess

    import av

    command = readme_command("curl http://localhost:8788/v1/audio/speech")
    with running_stack(tmp_path / "data") as plain:
        command = command.replace("http://localhost:8788", plain.url)
        subprocess.run(command, shell=True, check=True, cwd=tmp_path, timeout=120)  # noqa: S602 (the README's own)
    answer = tmp_path / "hello.mp3"
    assert answer.read_bytes()[:1] != b"{", answer.read_text(errors="replace")
    with av.open(str(answer), mode="r") as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name.startswith("mp3")  # FFmpeg decodes it with mp3float
        seconds = sum(frame.samples for frame in container.decode(stream)) / stream.codec_context.sample_rate
    assert seconds > 0.5


def test_the_captions_of_a_speech_give_each_segment_its_time(stack: Stack) -> None:
    sentences = [
        "The first sentence of this test is long enough to fill half a segment.",
        "Then a second sentence follows it with about as many words as that.",
        "And a third one ends the whole test with a dozen words too.",
    ]
    text = " ".join(sentences)
    with stack.client() as client:
        body = speech(text, "workflows/output/captioned.wav", max_text_tokens_per_segment=20)
        made = client.post("/v1/workflows", json=body)  # at most 20 words a segment: a sentence each
        assert made.status_code == 200, made.text
        segments = made.json()["segments"]
        captions = client.get(made.json()["captions_url"])
        pending = client.post(
            "/v1/workflows", params={"async": "true"}, json=speech("Later.", "workflows/output/later.wav")
        ).json()["workflow_id"]
        early = client.get(f"/v1/workflows/{pending}/captions.vtt")
        missing = client.get("/v1/workflows/wf-nothing-here/captions.vtt")
    assert [s["text"] for s in segments] == sentences
    assert segments[0]["start"] == 0
    for before, after in itertools.pairwise(segments):
        assert before["start"] < before["end"] < after["start"] < after["end"]
    assert segments[-1]["end"] == pytest.approx(made.json()["duration"], abs=0.01)
    assert captions.status_code == 200
    assert captions.headers["content-type"].startswith("text/vtt")
    lines = captions.text.splitlines()
    assert lines[0] == "WEBVTT"
    assert lines[2:5] == ["1", f"00:00:00.000 --> 00:00:0{segments[0]['end']:.3f}", segments[0]["text"]]
    assert captions.text.count(" --> ") == 3
    assert early.status_code in (200, 400)  # finished already, or not yet: never a 500
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "WORKFLOW_NOT_FOUND"


def test_a_model_configured_but_served_by_no_worker_waits_saying_so_then_fails(tmp_path: Path) -> None:
    """The local stack serves espeak; indextts-2.5 is configured beside it but no worker runs it."""
    env = {
        "TTS_MODELS": "espeak,indextts-2.5",
        "TTS_OPERATOR_MAX_QUEUE_SECONDS": "4",
        "TTS_OPERATOR_TICK_SECONDS": "0.5",
    }
    with running_stack(tmp_path / "data", env=env) as waiting, waiting.client() as client:
        accepted = client.post(
            "/v1/workflows",
            params={"async": "1"},
            json=speech("hello", "/share/workflows/output/unserved.wav", model="indextts-2.5"),
        ).json()
        workflow_id = accepted["workflow_id"]
        deadline = time.monotonic() + 10
        while True:
            record = client.get(f"/v1/workflows/status/{workflow_id}").json()
            if record.get("reason") == "NoWorkerForModel" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert (record["status"], record["reason"]) == ("queued", "NoWorkerForModel"), record
        assert "queued for model indextts-2.5, which no live inference worker serves" in record["message"]
        assert record["stages"][0]["model"] == "indextts-2.5"
        models = client.get("/api/v1/monitoring/gpu-lock/health").json()["models"]
        assert models["indextts-2.5"] == {"workers": 0, "ready": 0, "busy": 0, "idle": 0, "queued": 1}
        done = _wait_finished(client, workflow_id, timeout=20)
        # The model the stack does serve still speaks meanwhile.
        spoken = client.post("/v1/workflows", json=speech("hello", "/share/workflows/output/served.wav"))
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "MODEL_NOT_READY"
    assert "no inference worker served model indextts-2.5 within 4 s" in done["error"]["message"]
    assert "models served now: espeak" in done["error"]["message"]
    assert spoken.status_code == 200, spoken.text
