"""JetStream streams, subjects, consumers and buckets: named here once for every component."""

from __future__ import annotations

from tts_api.constants import TaskName

# Jobs: a work-queue stream; each message is taken by one worker, at most one job per GPU. A job
# goes to its model's subject (tts.jobs.<model>.<task>), read by that model's workers' consumer
# (tts-workers-<model>) and no other: a work queue admits one consumer per subject.
JOBS_STREAM = "TTS_JOBS"
JOBS_SUBJECT_PREFIX = "tts.jobs"
JOBS_SUBJECTS = f"{JOBS_SUBJECT_PREFIX}.>"
WORKERS_CONSUMER_PREFIX = "tts-workers"
# Before jobs went by model, every worker read every job through this one consumer
# (tts.jobs.<task>); a start that finds it removes it (see nats_support.jetstream).
LEGACY_WORKERS_CONSUMER = WORKERS_CONSUMER_PREFIX

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


def model_token(model: str) -> str:
    """A model name as one subject token and a consumer name (``indextts-2.5`` → ``indextts-2_5``):
    model names hold no ``_`` (see ``tts_api.speech_models``), so no two models share a token."""
    return model.replace(".", "_")


def job_subject(model: str, task: TaskName) -> str:
    """Where a job for ``model`` is queued: ``tts.jobs.<model>.<task>``."""
    return f"{JOBS_SUBJECT_PREFIX}.{model_token(model)}.{task.short}"


def model_jobs_subjects(model: str) -> str:
    """Every job for ``model``: the filter of its workers' consumer."""
    return f"{JOBS_SUBJECT_PREFIX}.{model_token(model)}.>"


def workers_consumer(model: str) -> str:
    """The durable consumer the workers serving ``model`` share."""
    return f"{WORKERS_CONSUMER_PREFIX}-{model_token(model)}"


def legacy_job_subject(task: TaskName) -> str:
    """Where jobs were queued before they went by model (``tts.jobs.<task>``)."""
    return f"{JOBS_SUBJECT_PREFIX}.{task.short}"


def dispatch_id(job_id: str, model: str) -> str:
    """A job's ``Nats-Msg-Id``: one per attempt and model, so that an attempt queued before jobs
    went by model is queued again on its model's subject, not dropped as a duplicate."""
    return f"{job_id}@{model_token(model)}"


def event_subject(workflow_uid: str, kind: str) -> str:
    return f"{EVENTS_SUBJECT_PREFIX}.{workflow_uid}.{kind}"


def audio_subject(stream_id: str) -> str:
    return f"{AUDIO_SUBJECT_PREFIX}.{stream_id}"
