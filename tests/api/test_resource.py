"""The TTSWorkflow resource: camelCase in Kubernetes, snake_case in Python, Kubernetes timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tts_api.constants import ConditionStatus, ConditionType, Phase, StageState, TaskName
from tts_api.errors import ErrorCode, ErrorInfo, TTSError
from tts_api.policy import ValidationPolicy
from tts_api.resource import (
    Condition,
    HeartbeatStatus,
    ObjectMeta,
    StageStatus,
    TTSWorkflow,
    TTSWorkflowSpec,
    TTSWorkflowStatus,
)
from tts_api.results import ModelInfo, SpeechParameters, SpeechResult
from tts_api.validation import parse_request, parse_spec, read_workflow

AT = datetime(2025, 10, 12, 10, 25, tzinfo=UTC)


def speech_status() -> TTSWorkflowStatus:
    result = SpeechResult(
        output_path="/share/workflows/output/speech.wav",
        duration=12.5,
        sample_rate=22050,
        text_length=25,
        processing_time=8.3,
        model_info=ModelInfo(model_type="IndexTTS2", model_version="2.0", device="cuda:0"),
        parameters=SpeechParameters(emotion_alpha=0.65, use_random=False, max_text_tokens_per_segment=120),
    )
    return TTSWorkflowStatus(
        phase=Phase.SUCCEEDED,
        stages=[
            StageStatus(
                name=TaskName.GENERATE_SPEECH,
                state=StageState.SUCCEEDED,
                attempt=1,
                started_at=AT,
                finished_at=AT,
                output=result.model_dump(mode="json"),
            )
        ],
        current_stage=TaskName.GENERATE_SPEECH,
        progress=100,
        heartbeat=HeartbeatStatus(pod="inference-0", worker="inference-0/gpu0", last_heartbeat=AT),
        result=result,
        conditions=[
            Condition(
                type=ConditionType.SUCCEEDED,
                status=ConditionStatus.TRUE,
                reason="StagesSucceeded",
                last_transition_time=AT,
                observed_generation=1,
            )
        ],
        accepted_at=AT,
    )


def test_status_is_camel_case_with_kubernetes_timestamps() -> None:
    written = speech_status().to_k8s()
    assert written["currentStage"] == "indextts.generate_speech"
    assert written["heartbeat"]["lastHeartbeat"] == "2025-10-12T10:25:00Z"
    assert written["result"]["sampleRate"] == 22050
    assert written["result"]["modelInfo"]["modelType"] == "IndexTTS2"
    assert written["conditions"][0]["lastTransitionTime"] == "2025-10-12T10:25:00Z"
    assert "error" not in written  # absent, not null: merge patches read null as delete


def test_status_round_trips_through_kubernetes() -> None:
    status = speech_status()
    assert TTSWorkflowStatus.from_k8s(status.to_k8s()) == status
    assert TTSWorkflowStatus.from_k8s(None) == TTSWorkflowStatus()


def test_status_finds_conditions_and_stages() -> None:
    status = speech_status()
    succeeded = status.condition(ConditionType.SUCCEEDED)
    assert succeeded is not None
    assert succeeded.status is ConditionStatus.TRUE
    assert status.condition(ConditionType.FAILED) is None
    stage = status.stage(TaskName.GENERATE_SPEECH)
    assert stage is not None
    assert stage.attempt == 1
    assert status.stage(TaskName.HEALTH_CHECK) is None


def test_status_tolerates_fields_from_a_newer_operator() -> None:
    status = TTSWorkflowStatus.from_k8s(
        {"phase": "Failed", "queuePosition": 3, "error": {"code": "TASK_TIMEOUT", "message": "no heartbeat"}}
    )
    assert status.phase is Phase.FAILED
    assert status.error == ErrorInfo(code=ErrorCode.TASK_TIMEOUT, message="no heartbeat")


def test_request_maps_to_spec_and_back(unmounted_policy: ValidationPolicy) -> None:
    request = parse_request(
        {
            "video_path": "/app/videos/example.mp4",
            "workflow_config": {
                "workflow_chain": ["indextts.generate_speech"],
                "indextts_config": {
                    "text": "hi",
                    "output_path": "/share/workflows/output/a.wav",
                    "emotion_alpha": 0.3,
                },
            },
        },
        policy=unmounted_policy,
    )
    spec = TTSWorkflowSpec.from_request(request, timeout_seconds=120)
    written = spec.to_k8s()
    assert written["videoPath"] == "/app/videos/example.mp4"
    assert written["workflowConfig"]["indexttsConfig"]["emotionAlpha"] == 0.3
    assert written["timeoutSeconds"] == 120
    assert "ttlSecondsAfterFinished" not in written
    assert parse_spec(written, policy=unmounted_policy) == spec
    assert spec.to_request() == request
    assert (
        spec.to_request().model_dump(mode="json")["workflow_config"]["indextts_config"]["emotion_alpha"]
        == 0.3
    )


def test_whole_object_is_what_kubectl_shows(unmounted_policy: ValidationPolicy) -> None:
    spec = parse_spec(
        {"workflowConfig": {"workflowChain": ["indextts.health_check"]}}, policy=unmounted_policy
    )
    body = TTSWorkflow(metadata={"name": "hc", "namespace": "tts"}, spec=spec).to_k8s()
    assert body["apiVersion"] == "tts.indextts.io/v1alpha1"
    assert body["kind"] == "TTSWorkflow"
    assert body["metadata"] == {"name": "hc", "namespace": "tts"}
    assert "status" not in body
    body = TTSWorkflow(metadata={"name": "hc"}, spec=spec, status=speech_status()).to_k8s()
    assert body["status"]["phase"] == "Succeeded"


def test_a_stored_record_stays_readable_when_its_reference_is_gone(
    share: Path, policy: ValidationPolicy
) -> None:
    (share / "ref").mkdir()
    reference = share / "ref" / "voice.wav"
    reference.write_bytes(b"RIFF")
    spec = {
        "workflowConfig": {
            "workflowChain": ["indextts.generate_speech"],
            "indexttsConfig": {
                "text": "hi",
                "outputPath": "/share/workflows/output/a.wav",
                "referenceAudio": "/share/ref/voice.wav",
            },
        }
    }
    body = TTSWorkflow(
        metadata=ObjectMeta(name="w", uid="u"), spec=parse_spec(spec, policy=policy), status=speech_status()
    ).to_k8s()
    reference.unlink()
    with pytest.raises(TTSError):
        parse_spec(body["spec"], policy=policy)  # a new request is refused...
    stored = read_workflow(body, policy=policy)  # ...but the accepted record still reads
    assert stored.metadata.name == "w"
    assert stored.status == speech_status()
    assert stored.spec is not None
    assert stored.spec.workflow_config.indextts_config is not None
    assert stored.spec.workflow_config.indextts_config.reference_audio == "/share/ref/voice.wav"


def test_a_stored_record_with_a_broken_spec_still_reads_with_its_status(policy: ValidationPolicy) -> None:
    """Made with kubectl around the gateway and failed by the operator: shown, not hidden."""
    spec = {"workflowConfig": {"workflowChain": ["indextts.nope"]}}
    failed = {"phase": "Failed", "error": {"code": "INVALID_INPUT", "message": "unknown task"}}
    stored = read_workflow({"metadata": {"name": "w"}, "spec": spec, "status": failed}, policy=policy)
    assert stored.spec is None
    assert stored.status.phase is Phase.FAILED
    assert stored.status.error is not None
    assert stored.status.error.code is ErrorCode.INVALID_INPUT
    with pytest.raises(TTSError) as caught:  # what the operator says about it, naming the field
        parse_spec(spec, policy=policy)
    assert caught.value.field == "spec.workflowConfig.workflowChain[0]"
