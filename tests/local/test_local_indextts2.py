"""`make dev CHECKPOINT=...`: the local stack on the real IndexTTS2 code (random weights, on CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile

from tests.inference_pod.checkpoint_builder import Checkpoint
from tests.inference_pod.conftest import write_voice
from tests.local.stack import running_stack

pytestmark = pytest.mark.slow


def test_local_stack_speaks_through_indextts2(checkpoint: Checkpoint, tmp_path: Path) -> None:
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(checkpoint.hf_home),
        # Random GPT weights never emit the stop token: keep generation short.
        "TTS_WORKER_MAX_MEL_TOKENS": "20",
        "TTS_WORKER_NUM_BEAMS": "1",
        "TTS_WORKER_TEXT_LANGUAGE": "zh",
    }
    voice = write_voice(tmp_path / "voice.wav")  # IndexTTS2 always speaks in some voice
    args = ["--checkpoint", str(checkpoint.model_dir), "--default-voice", str(voice)]
    with (
        running_stack(tmp_path, *args, env=env) as stack,
        stack.client() as client,
    ):
        info = client.post(
            "/v1/workflows", json={"workflow_config": {"workflow_chain": ["indextts.get_model_info"]}}
        )
        speech = client.post(
            "/v1/workflows",
            json={
                "workflow_config": {
                    "workflow_chain": ["indextts.generate_speech"],
                    "indextts_config": {
                        "text": "你好，这是IndexTTS2生成的语音。",
                        "output_path": "/share/workflows/output/hello.wav",
                        "emotion_vector": [0.8, 0, 0, 0, 0, 0, 0.2, 0],
                    },
                }
            },
        )
    assert info.status_code == 200, info.text
    model = info.json()["model_info"]
    assert model["model_type"] == "IndexTTS2"
    assert model["capabilities"]["voice_cloning"] is True
    assert speech.status_code == 200, speech.text
    body = speech.json()
    assert body["model_info"]["model_type"] == "IndexTTS2"
    audio = soundfile.info(str(tmp_path / "share" / "workflows" / "output" / "hello.wav"))
    assert audio.samplerate == body["sample_rate"] == 22050
    assert audio.duration == pytest.approx(body["duration"], abs=0.01)
