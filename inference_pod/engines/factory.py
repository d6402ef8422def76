"""Which engine a worker runs: named by ``TTS_WORKER_ENGINE``, or chosen by what is mounted."""

from __future__ import annotations

from inference_pod.engines.base import Engine
from inference_pod.settings import WorkerSettings


def engine_name(settings: WorkerSettings) -> str:
    """``auto`` means indextts2 when a checkpoint directory is configured, else espeak."""
    if settings.engine != "auto":
        return settings.engine
    return "indextts2" if settings.checkpoint_dir is not None else "espeak"


def build_engine(settings: WorkerSettings) -> Engine:
    """The engine, constructed but not loaded (loading is the worker's first step)."""
    name = engine_name(settings)
    if name == "indextts2":
        from inference_pod.engines.indextts2 import IndexTTS2Engine

        return IndexTTS2Engine.from_settings(settings)
    if name == "synthetic":
        from inference_pod.engines.synthetic import SyntheticEngine

        return SyntheticEngine(settings.synthetic_delay_seconds)
    from inference_pod.engines.espeak import EspeakEngine

    return EspeakEngine()


def default_slot(name: str, gpu_index: int | None) -> str:
    return f"gpu{gpu_index}" if name == "indextts2" and gpu_index is not None else "cpu0"
