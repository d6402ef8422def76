"""NATS messages: they round-trip, carry their version, and a reader refuses what it cannot read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tts_api.constants import TaskName
from tts_api.errors import ErrorCode, ErrorInfo
from tts_api.messages import (
    MESSAGE_VERSION,
    CancelMessage,
    CompletedEvent,
    FailedEvent,
    HeartbeatEvent,
    JobMessage,
    MessageError,
    Progress,
    ProgressEvent,
    StartedEvent,
    WorkflowRef,
    decode_command,
    decode_event,
    encode,
    make_job_id,
)
from tts_api.nats_names import dispatch_id, event_subject, job_subject, model_jobs_subjects, workers_consumer
from tts_api.request import IndexTTSConfig

WORKFLOW = WorkflowRef(uid="7d9c6a1e-0000-4000-8000-000000000001", name="hello", namespace="default")
AT = datetime(2025, 10, 12, 10, 30, tzinfo=UTC)
SOURCE = {
    "job_id": make_job_id(WORKFLOW.uid, TaskName.GENERATE_SPEECH, 1),
    "workflow": WORKFLOW,
    "task": TaskName.GENERATE_SPEECH,
    "attempt": 1,
    "pod": "inference-0",
    "worker_id": "inference-0/gpu0",
    "at": AT,
}

EVENTS = [
    StartedEvent(**SOURCE, gpu="NVIDIA H100"),
    HeartbeatEvent(**SOURCE, progress=Progress(segments_done=1, segments_total=4)),
    HeartbeatEvent(**SOURCE),
    ProgressEvent(**SOURCE, progress=Progress(segments_done=3, segments_total=4)),
    CompletedEvent(
        **SOURCE,
        output={"output_path": "/share/workflows/output/a.wav", "duration": 1.5, "sample_rate": 22050},
    ),
    FailedEvent(
        **SOURCE,
        error=ErrorInfo(code=ErrorCode.INSUFFICIENT_MEMORY, message="CUDA out of memory"),
        retryable=True,
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.kind)
def test_event_round_trips(event: StartedEvent) -> None:
    wire = encode(event)
    assert json.loads(wire)["version"] == MESSAGE_VERSION
    assert decode_event(wire) == event


def test_job_round_trips_with_its_config() -> None:
    job = JobMessage(
        job_id=make_job_id(WORKFLOW.uid, TaskName.GENERATE_SPEECH, 2),
        workflow=WORKFLOW,
        task=TaskName.GENERATE_SPEECH,
        attempt=2,
        config=IndexTTSConfig(
            text="你好", output_path="/share/workflows/output/a.wav", emotion_vector=[0.1] + [0.0] * 7
        ),
        deadline=AT,
    )
    decoded = decode_command(encode(job))
    assert decoded == job
    assert isinstance(decoded, JobMessage)
    assert decoded.config is not None
    assert decoded.config.emotion_alpha == 0.65
    assert (
        json.loads(encode(job))["config"]["output_path"] == "/share/workflows/output/a.wav"
    )  # snake_case on the wire


def test_cancel_round_trips() -> None:
    cancel = CancelMessage(job_id="uid/generate_speech/1", workflow=WORKFLOW, reason="workflow deleted")
    assert decode_command(encode(cancel)) == cancel


def test_job_id_names_workflow_stage_and_attempt() -> None:
    assert make_job_id("abc", TaskName.GENERATE_SPEECH, 3) == "abc/generate_speech/3"
    assert make_job_id("abc", TaskName.GENERATE_SPEECH, 3) != make_job_id("abc", TaskName.GENERATE_SPEECH, 4)


def test_subjects_are_per_model_and_task_and_per_workflow() -> None:
    assert job_subject("espeak", TaskName.HEALTH_CHECK) == "tts.jobs.espeak.health_check"
    # A dot would split the subject token: the model's own name is kept apart from another's.
    assert job_subject("indextts-2.5", TaskName.GENERATE_SPEECH) == "tts.jobs.indextts-2_5.generate_speech"
    assert job_subject("indextts-2", TaskName.GENERATE_SPEECH) != job_subject(
        "indextts-2.5", TaskName.GENERATE_SPEECH
    )
    assert model_jobs_subjects("indextts-2.5") == "tts.jobs.indextts-2_5.>"
    assert workers_consumer("indextts-2.5") == "tts-workers-indextts-2_5"
    assert dispatch_id("u/generate_speech/1", "indextts-2.5") == "u/generate_speech/1@indextts-2_5"
    assert event_subject("abc", "heartbeat") == "tts.events.abc.heartbeat"


def test_progress_percent() -> None:
    assert Progress(segments_done=1, segments_total=3).percent == 33
    assert Progress(segments_done=3, segments_total=3).percent == 100


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (b"not json", "not a JSON message"),
        (b"[1]", "JSON object"),
        (json.dumps({**json.loads(encode(EVENTS[0])), "version": 2}).encode(), "version 2 is not supported"),
        (
            json.dumps({k: v for k, v in json.loads(encode(EVENTS[0])).items() if k != "version"}).encode(),
            "version None",
        ),
        (json.dumps({**json.loads(encode(EVENTS[0])), "kind": "exploded"}).encode(), "bad exploded message"),
        (json.dumps({**json.loads(encode(EVENTS[0])), "attempt": 0}).encode(), "attempt"),
    ],
)
def test_unreadable_event_is_refused_with_a_reason(wire: bytes, words: str) -> None:
    with pytest.raises(MessageError) as caught:
        decode_event(wire)
    assert words in str(caught.value)


def test_a_job_with_a_bad_config_is_refused() -> None:
    raw = json.loads(encode(JobMessage(job_id="j", workflow=WORKFLOW, task=TaskName.HEALTH_CHECK, attempt=1)))
    raw["config"] = {"text": "x", "output_path": "/etc/x.wav"}
    with pytest.raises(MessageError) as caught:
        decode_command(json.dumps(raw))
    assert "config.output_path" in str(caught.value)


def test_an_event_is_not_a_command() -> None:
    with pytest.raises(MessageError):
        decode_command(encode(EVENTS[0]))
