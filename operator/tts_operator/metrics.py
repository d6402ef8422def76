"""Prometheus metrics of the operator (served on ``TTS_OPERATOR_METRICS_PORT``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter(
    "tts_operator_reconciles_total",
    "Inputs reconciled, by input and outcome (changed, unchanged, ignored, error).",
    ["input", "outcome"],
)
DISPATCHES = Counter(
    "tts_operator_dispatches_total",
    "Jobs published, by task and whether JetStream kept them (new) or dropped them (duplicate).",
    ["task", "result"],
)
RETRIES = Counter(
    "tts_operator_retries_total", "New attempts after a failure or a stale heartbeat.", ["task"]
)
TIMEOUTS = Counter(
    "tts_operator_timeouts_total",
    "Workflows failed with TASK_TIMEOUT, by kind (heartbeat, workflow).",
    ["kind"],
)
FINISHED = Counter("tts_operator_workflows_finished_total", "Workflows finished, by phase.", ["phase"])
STAGE_SECONDS = Histogram(
    "tts_operator_stage_duration_seconds",
    "From a stage's start on a worker to its end, by task and state.",
    ["task", "state"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800),
)
STATUS_PATCH_ERRORS = Counter(
    "tts_operator_status_patch_errors_total", "Status patches the API server refused or did not answer."
)
STATUS_PATCHES = Counter(
    "tts_operator_status_patches_total", "Status patches written, by kind (at once, batched).", ["kind"]
)
WORKER_EVENTS = Counter("tts_operator_worker_events_total", "Worker events consumed, by kind.", ["kind"])
EVENTS_PENDING = Gauge(
    "tts_operator_events_pending", "Worker events not yet read by the operator (its consumer's pending)."
)
JOBS_WAITING = Gauge("tts_operator_jobs_waiting", "Jobs in the work queue that no worker has finished.")
IS_LEADER = Gauge("tts_operator_leader", "1 while this replica holds the Lease and reconciles.")
