"""JetStream streams, subjects, consumers and buckets: named here once for every component."""

from __future__ import annotations

from tts_api.constants import TaskName

# Jobs: a work-queue stream; each message is taken by one worker, at most one job per GPU.
JOBS_STREAM = "TTS_JOBS"
JOBS_SUBJECT_PREFIX = "tts.jobs"
JOBS_SUBJECTS = f"{JOBS_SUBJECT_PREFIX}.>"
WORKERS_CONSUMER = "tts-workers"

# Worker events (started, heartbeat, progress, completed, failed): a stream the operator reads
# through a durable consumer, so events sent while it is down are not lost.
EVENTS_STREAM = "TTS_EVENTS"
EVENTS_SUBJECT_PREFIX = "tts.events"
EVENTS_SUBJECTS = f"{EVENTS_SUBJECT_PREFIX}.>"
OPERATOR_CONSUMER = "tts-operator"

# Cancels: plain NATS publish; every worker listens and stops the job if it holds it.
CANCEL_SUBJECT = "tts.cancel"

# Streamed speech: plain NATS publish, worker to gateway, one subject per request (tts.audio.<id>).
AUDIO_SUBJECT_PREFIX = "tts.audio"

# Worker registry: one key per worker, expiring when the worker stops refreshing it.
WORKERS_BUCKET = "tts_workers"

# The voice library as workers read it: one key per voice name (on a cluster the operator keeps it
# equal to the TTSVoice objects; in local mode the gateway writes it).
VOICES_BUCKET = "tts_voices"

# Local mode only: TTSWorkflow records (the API server's role), one key per workflow name.
WORKFLOWS_BUCKET = "tts_workflows"


def job_subject(task: TaskName) -> str:
    return f"{JOBS_SUBJECT_PREFIX}.{task.short}"


def event_subject(workflow_uid: str, kind: str) -> str:
    return f"{EVENTS_SUBJECT_PREFIX}.{workflow_uid}.{kind}"


def audio_subject(stream_id: str) -> str:
    return f"{AUDIO_SUBJECT_PREFIX}.{stream_id}"
