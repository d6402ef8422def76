"""Prometheus metrics of one worker, in a registry of its own (several workers may share a process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_RTF = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.jobs = Counter(
            "tts_worker_jobs",
            "Jobs handled, by task and outcome "
            "(succeeded, failed, abandoned, cancelled, handed_back, rejected)",
            ["task", "outcome"],
            registry=r,
        )
        self.synthesis_seconds = Histogram(
            "tts_worker_synthesis_seconds",
            "Seconds the engine took per synthesis",
            buckets=_SECONDS,
            registry=r,
        )
        self.audio_seconds = Histogram(
            "tts_worker_audio_seconds",
            "Seconds of audio produced per synthesis",
            buckets=_SECONDS,
            registry=r,
        )
        self.real_time_factor = Histogram(
            "tts_worker_real_time_factor",
            "Synthesis seconds per second of audio (below 1 is faster than real time)",
            buckets=_RTF,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "tts_worker_queue_wait_seconds",
            "Seconds from dispatch by the operator to the start of work",
            buckets=_SECONDS,
            registry=r,
        )
        # Per slot: a process may run one worker slot per GPU.
        self.model_load_seconds = Gauge(
            "tts_worker_model_load_seconds", "Seconds the engine took to load", ["slot"], registry=r
        )
        self.model_ready = Gauge("tts_worker_model_ready", "1 when the model is loaded", ["slot"], registry=r)
        self.busy = Gauge("tts_worker_busy", "1 while a job is in hand", ["slot"], registry=r)
        self.gpu_memory_used = Gauge(
            "tts_worker_gpu_memory_used_bytes", "GPU memory in use (absent on CPU)", ["slot"], registry=r
        )
        self.gpu_memory_total = Gauge(
            "tts_worker_gpu_memory_total_bytes", "GPU memory in all (absent on CPU)", ["slot"], registry=r
        )
