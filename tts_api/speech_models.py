"""The speech models a request may name, and which engine serves each: named here once for the API,
the operator and the workers."""

from __future__ import annotations

# Each engine a worker can run, by the model name requests use (``indextts_config.model``, the
# OpenAI-compatible ``model``, ids of ``GET /v1/models``).
ENGINE_MODELS = {
    "indextts2": "indextts-2",
    "indextts25": "indextts-2.5",
    "espeak": "espeak",
    "synthetic": "synthetic",
}
KNOWN_MODELS = tuple(ENGINE_MODELS.values())
MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9.-]{0,62}$"


def model_of(engine: str) -> str:
    """The model name of ``engine`` (an engine this table does not know is its own name)."""
    return ENGINE_MODELS.get(engine, engine)


def engine_of(model: str) -> str:
    """The engine (``TTS_WORKER_ENGINE``) that serves ``model``; a model this table does not know
    is its own engine's name."""
    return next((engine for engine, name in ENGINE_MODELS.items() if name == model), model)


def unknown_model_message(name: str, known: tuple[str, ...]) -> str:
    listing = ", ".join(known) or "none are configured"
    return f"{name!r} is not a model of this deployment; use one of {listing} (TTS_MODELS)"
