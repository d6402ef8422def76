"""Which models this service speaks with: the models its registered workers serve, how many workers
serve each (ready, idle), and whether a model a speech request names may be used."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.openai_errors import OpenAIError
from tts_api.registry import ModelState, WorkerEntry, WorkerState
from tts_api.speech_models import model_of

# OpenAI's model names: each means "the model this service speaks with" (the deployment's default).
OPENAI_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"})


@dataclass
class ServedModel:
    created: int  # when its first worker started (seconds since the epoch), as OpenAI's ``created``
    workers: int = 0  # registered workers (slots) serving it
    ready_workers: int = 0  # of which have the model loaded
    idle_workers: int = 0  # of which are ready and hold no job now
    busy_workers: int = 0  # of which hold a job
    languages: set[str] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return self.ready_workers > 0


def served_models(entries: list[WorkerEntry]) -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = {}
    for entry in entries:
        created = int(entry.started_at.timestamp())
        served = models.setdefault(entry.model or model_of(entry.engine), ServedModel(created=created))
        served.created = min(served.created, created)
        served.workers += 1
        ready = entry.model_state is ModelState.READY
        served.ready_workers += ready
        served.idle_workers += ready and entry.state is WorkerState.IDLE
        served.busy_workers += entry.state is WorkerState.BUSY
        served.languages.update(entry.languages)
    return models


def requested_model(
    name: str, configured: tuple[str, ...], served: dict[str, ServedModel], *, wait_for_workers: bool = False
) -> str | None:
    """The model a speech request names (None: one of OpenAI's names, meaning the default), or a 404
    naming the models to use: it must be configured here and served by a worker now, or, with
    ``wait_for_workers`` (the pods scale from zero), merely configured: its job then waits for one."""
    if name in OPENAI_MODELS:
        return None
    known = not configured or name in configured
    if known and (name in served or (wait_for_workers and configured)):
        return name
    usable = {model for model in served if not configured or model in configured}
    if wait_for_workers:
        usable |= set(configured)
    listing = ", ".join(sorted(usable | OPENAI_MODELS))
    why = "is not served here" if not configured or name in configured else "is not a model of this service"
    raise OpenAIError(
        404, f"model: {name!r} {why}; use one of {listing}", param="model", code="model_not_found"
    )
