"""Structured logs: one JSON object per line, with the job id and workflow when a record has them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

_CONTEXT_FIELDS = ("job_id", "workflow", "workflow_uid", "worker_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, worker_id: str | None = None) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    if worker_id is not None:

        def add_worker(record: logging.LogRecord) -> bool:
            record.worker_id = worker_id
            return True

        handler.addFilter(add_worker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
