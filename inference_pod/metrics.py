"""Prometheus metrics of one worker, in a registry of its own (several workers may share a process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tts_api.registry import WorkerEntry

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
        self.gpu_memory_allocated = Gauge(
            "tts_worker_gpu_memory_allocated_bytes",
            "GPU memory torch has allocated for tensors (absent on CPU)",
            ["slot"],
            registry=r,
        )
        self.gpu_memory_reserved = Gauge(
            "tts_worker_gpu_memory_reserved_bytes",
            "GPU memory torch's caching allocator holds (absent on CPU)",
            ["slot"],
            registry=r,
        )
        self.resident_memory = Gauge(
            "tts_worker_resident_memory_bytes", "The worker process's resident memory", registry=r
        )
        self.cache_entries = Gauge(
            "tts_worker_cache_entries", "Entries in an engine cache", ["slot", "cache"], registry=r
        )
        self.cache_capacity = Gauge(
            "tts_worker_cache_capacity",
            "The most entries an engine cache keeps",
            ["slot", "cache"],
            registry=r,
        )

    def observe_memory(self, entry: WorkerEntry) -> None:
        """The memory figures of a registry entry, as gauges."""
        slot = entry.slot
        for gauge, value in (
            (self.gpu_memory_used, entry.gpu_memory_used),
            (self.gpu_memory_total, entry.gpu_memory_total),
            (self.gpu_memory_allocated, entry.gpu_memory_allocated),
            (self.gpu_memory_reserved, entry.gpu_memory_reserved),
        ):
            if value is not None:
                gauge.labels(slot).set(value)
        if entry.resident_memory is not None:
            self.resident_memory.set(entry.resident_memory)
        for name, use in entry.caches.items():
            self.cache_entries.labels(slot, name).set(use.entries)
            self.cache_capacity.labels(slot, name).set(use.capacity)
