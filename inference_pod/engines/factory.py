"""Which engine a worker runs: named by ``TTS_WORKER_ENGINE``, or chosen by what is mounted."""

from __future__ import annotations

from dataclasses import dataclass

from inference_pod.engines.base import Engine
from inference_pod.settings import WorkerSettings


def engine_name(settings: WorkerSettings) -> str:
    """``auto`` means indextts2 when a checkpoint directory is configured, else espeak."""
    if settings.engine != "auto":
        return settings.engine
    return "indextts2" if settings.checkpoint_dir is not None else "espeak"


def build_engine(settings: WorkerSettings, *, device: str | None = None) -> Engine:
    """The engine, constructed but not loaded (loading is the worker's first step)."""
    name = engine_name(settings)
    if name == "indextts2":
        from inference_pod.engines.indextts2 import IndexTTS2Engine

        return IndexTTS2Engine.from_settings(settings, device=device)
    if name == "indextts25":
        from inference_pod.engines.indextts25 import IndexTTS25Engine

        return IndexTTS25Engine.from_settings(settings, device=device)
    if name == "synthetic":
        from inference_pod.engines.synthetic import SyntheticEngine

        return SyntheticEngine(settings.synthetic_delay_seconds)
    from inference_pod.engines.espeak import EspeakEngine

    return EspeakEngine()


@dataclass(frozen=True)
class Slot:
    """One worker slot of this process: one job at a time, on one GPU or on the CPU."""

    name: str
    gpu_index: int | None = None

    @property
    def device(self) -> str | None:
        return None if self.gpu_index is None else f"cuda:{self.gpu_index}"


class SlotError(ValueError):
    pass


# The engines that keep their model on a GPU: one job per GPU.
GPU_ENGINES = frozenset({"indextts2", "indextts25"})


def plan_slots(engine: str, gpu_count: int, slots: int | None, slot_name: str | None) -> list[Slot]:
    """One slot per visible GPU for IndexTTS2 and IndexTTS-2.5 (one job per GPU), else ``slots`` CPU
    slots (default 1)."""
    uses_gpu = engine in GPU_ENGINES and gpu_count > 0
    count = slots or (gpu_count if uses_gpu else 1)
    if uses_gpu and count > gpu_count:
        raise SlotError(
            f"TTS_WORKER_SLOTS={count} but only {gpu_count} GPU(s) are visible: one job per GPU at most"
        )
    if slot_name is not None and count != 1:
        raise SlotError("TTS_WORKER_SLOT names a single slot; unset it or set TTS_WORKER_SLOTS=1")
    planned = [Slot(f"gpu{i}", i) if uses_gpu else Slot(f"cpu{i}") for i in range(count)]
    if slot_name is not None:
        planned = [Slot(slot_name, planned[0].gpu_index)]
    return planned
