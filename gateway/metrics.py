"""The gateway's Prometheus metrics (prefix ``tts_gateway_``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter("tts_gateway_requests", "HTTP requests served", ["method", "route", "status"])
REQUEST_SECONDS = Histogram(
    "tts_gateway_request_seconds",
    "Time to answer a request (synchronous workflow requests include the synthesis)",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
# mode: sync or async (the workflow API), speech (POST /v1/audio/speech).
WORKFLOWS_SUBMITTED = Counter("tts_gateway_workflows_submitted", "Workflows created", ["mode"])
