"""Which models this service speaks with: the engines its registered workers run, by the names the
OpenAI-compatible routes use, and whether a worker for each is ready now."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.openai_errors import OpenAIError
from tts_api.registry import ModelState, WorkerEntry

# The engines' names as models (``model`` of a speech request, ids of ``GET /v1/models``).
ENGINE_MODELS = {"indextts2": "indextts-2", "espeak": "espeak", "synthetic": "synthetic"}
# OpenAI's model names: each means "the model this service speaks with".
OPENAI_MODELS = frozenset({"tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15"})


@dataclass(frozen=True)
class ServedModel:
    ready: bool  # a worker for it has its model loaded
    created: int  # when its first worker started (seconds since the epoch), as OpenAI's ``created``


def model_name(engine: str) -> str:
    return ENGINE_MODELS.get(engine, engine)


def served_models(entries: list[WorkerEntry]) -> dict[str, ServedModel]:
    models: dict[str, ServedModel] = {}
    for entry in entries:
        name = model_name(entry.engine)
        known = models.get(name)
        ready = entry.model_state is ModelState.READY or (known is not None and known.ready)
        created = int(entry.started_at.timestamp())
        models[name] = ServedModel(ready=ready, created=min(created, known.created) if known else created)
    return models


def check_model(name: str, served: dict[str, ServedModel]) -> None:
    """The model must be served here, or be one of OpenAI's names (which mean the model served)."""
    if name in OPENAI_MODELS or name in served:
        return
    listing = ", ".join(sorted(set(served) | OPENAI_MODELS))
    raise OpenAIError(
        404,
        f"model: {name!r} is not served here; use one of {listing}",
        param="model",
        code="model_not_found",
    )
