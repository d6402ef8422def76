"""The workflow API's curl examples, sent through the gateway Service as written (plus the API key)."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.cluster import Cluster

# The workflow API's usage examples (使用示例), request by request (the bodies of their curl -d arguments).
API_CURL_EXAMPLES: dict[str, dict[str, Any]] = {
    "1. basic text to speech": {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": "你好，这是IndexTTS2生成的语音。",
                "output_path": "/share/workflows/output/hello.wav",
            },
        },
    },
    "2. voice cloning": {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": "这是使用音色克隆生成的语音。",
                "output_path": "/share/workflows/output/cloned.wav",
                "reference_audio": "/share/reference/target_voice.wav",
            },
        },
    },
    "3. emotion control": {
        "video_path": "/app/videos/example.mp4",
        "workflow_config": {
            "workflow_chain": ["indextts.generate_speech"],
            "indextts_config": {
                "text": "今天天气真好，心情很愉快！",
                "output_path": "/share/workflows/output/happy.wav",
                "emotion_vector": [0.8, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.0],
            },
        },
    },
}


@pytest.mark.parametrize("body", API_CURL_EXAMPLES.values(), ids=API_CURL_EXAMPLES.keys())
def test_a_curl_example_answers_with_the_apis_result(
    cluster: Cluster, reference_voice: str, body: dict[str, Any]
) -> None:
    with cluster.gateway(timeout=200) as gateway:
        answer = gateway.post("/v1/workflows", json=body)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["status"] == "success"
        assert result["output_path"] == body["workflow_config"]["indextts_config"]["output_path"]
        assert result["duration"] > 0
        # 4. 查询工作流状态: curl -X GET http://localhost:8788/v1/workflows/status/{workflow_id}
        status = gateway.get(f"/v1/workflows/status/{result['workflow_id']}")
        assert status.status_code == 200, status.text
        assert status.json()["status"] == "succeeded"
        assert status.json()["progress"] == 100
        audio = gateway.get(f"/v1/workflows/{result['workflow_id']}/audio")
        assert audio.status_code == 200
        assert audio.content[:4] == b"RIFF"


def test_the_gateway_refuses_a_bad_request_naming_the_field(cluster: Cluster) -> None:
    body = API_CURL_EXAMPLES["1. basic text to speech"] | {}
    bad = {
        **body,
        "workflow_config": {
            **body["workflow_config"],
            "indextts_config": {**body["workflow_config"]["indextts_config"], "emotion_alpha": 2},
        },
    }
    with cluster.gateway() as gateway:
        answer = gateway.post("/v1/workflows", json=bad)
    assert answer.status_code == 400
    assert answer.json()["error_code"] == "INVALID_INPUT"
    assert "emotion_alpha" in answer.json()["error"]


def test_the_gateway_wants_the_api_key_except_on_healthz(cluster: Cluster) -> None:
    if cluster.api_key() is None:
        pytest.skip("this release runs the gateway without an API key")
    with cluster.gateway() as gateway:
        gateway.headers.pop("X-API-Key")
        assert gateway.get("/healthz").status_code == 200
        assert gateway.get("/v1/workflows/status/nope").status_code == 401
