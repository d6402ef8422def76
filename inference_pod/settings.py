"""The worker's settings: one pydantic-settings class, environment prefix ``TTS_WORKER_``.

Settings shared with the other processes (the shared volume, text limits) are read by
:class:`tts_api.policy.ValidationPolicy` from ``TTS_*``; this class holds only what a worker needs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nats_support.jetstream import WORKERS_ACK_WAIT_SECONDS

EngineName = Literal["auto", "espeak", "indextts2", "indextts25", "synthetic"]


class WorkerSettings(BaseSettings):
    """Environment: ``TTS_WORKER_<NAME>`` (e.g. ``TTS_WORKER_ENGINE=espeak``)."""

    model_config = SettingsConfigDict(env_prefix="TTS_WORKER_", extra="ignore")

    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server with JetStream.")
    engine: EngineName = Field(
        default="auto",
        description="Speech engine: indextts2, indextts25 (IndexTTS-2.5), espeak, synthetic, or auto "
        "(indextts2 when a checkpoint is configured, else espeak).",
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        description="The mounted IndexTTS2 checkpoint (config.yaml, gpt.pth, s2mel.pth, bpe.model, ...).",
    )
    hf_home: Path | None = Field(
        default=None,
        description="Hub cache holding w2v-bert-2.0, the MaskGCT semantic codec and CAMPPlus "
        "(read offline); defaults to <checkpoint_dir>/hf_cache when that exists.",
    )
    device: str = Field(
        default="auto", description="torch device for indextts2: auto (cuda:N when present, else cpu)."
    )
    require_gpu: bool = Field(
        default=False,
        description="Without a CUDA device the engine does not load (GPU_UNAVAILABLE, model state "
        "error, never ready).",
    )
    use_fp16: bool = Field(default=True, description="fp16 inference on CUDA (ignored on CPU).")
    max_mel_tokens: int = Field(
        default=1500, ge=1, description="Upper bound on mel tokens generated per segment (indextts2)."
    )
    num_beams: int = Field(
        default=3, ge=1, description="Beam width of the GPT decoder (indextts2, indextts25 with sdpa)."
    )
    attn_backend: Literal["sdpa", "flash"] = Field(
        default="sdpa",
        description="indextts25's GPT attention: sdpa, or flash (flash-attn's paged KV cache and CUDA "
        "graphs, on CUDA only; needs indextts25-inference[flash]; no beam search).",
    )
    gpt_bf16: bool = Field(
        default=False,
        description="indextts25's GPT in bfloat16 on CUDA (about 1.7 GB less GPU memory, no faster).",
    )
    text_normalization: bool = Field(
        default=True,
        description="indextts25 spells out numbers, dates and symbols (NeMo grammars, cached in "
        "TTS_WORKER_NEMO_CACHE_DIR) before speaking.",
    )
    text_language: str | None = Field(
        default=None,
        description="IndexTTS2 text normalization language (zh, en); unset: both, chosen per text.",
    )
    nemo_cache_dir: Path | None = Field(
        default=None,
        description="Writable folder for IndexTTS2's and IndexTTS-2.5's compiled text-normalization "
        "grammars (the packages keep them inside themselves or under $HOME, read-only in a pod); unset: "
        "the package's folder.",
    )
    default_voice: Path | None = Field(
        default=None,
        description="Reference audio IndexTTS2 and IndexTTS-2.5 use when a request names none (a local "
        "file); without it such a request fails with INVALID_INPUT naming reference_audio.",
    )
    condition_cache_size: int = Field(
        default=16, ge=1, description="Speaker/emotion conditionings kept, keyed by audio content hash."
    )
    slots: int | None = Field(
        default=None,
        ge=1,
        description="Worker slots in this process, one job each: default one per visible GPU for "
        "indextts2 and indextts25, else 1. Each slot loads its own engine.",
    )
    slot: str | None = Field(default=None, description="Name of the single slot (default gpu<N> or cpu<N>).")
    pod_name: str = Field(
        default_factory=lambda: os.environ.get("POD_NAME") or socket.gethostname(),
        description="The pod's name (env POD_NAME, else the hostname).",
    )
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="Heartbeat and registry refresh period.")
    ack_wait_seconds: float = Field(
        default=WORKERS_ACK_WAIT_SECONDS,
        gt=0,
        description="JetStream ack deadline; extended every heartbeat while a job runs.",
    )
    shutdown_grace_seconds: float = Field(
        default=25.0,
        ge=0,
        description="On SIGTERM, how long the job in hand may run before it is handed back.",
    )
    fetch_timeout_seconds: float = Field(default=1.0, gt=0, description="Long-poll wait of each fetch.")
    presets_file: Path | None = Field(
        default=None, description="YAML or JSON voice presets: name -> reference_audio, description, ..."
    )
    http_host: str = Field(default="0.0.0.0", description="Bind address of /healthz, /readyz, /metrics.")  # noqa: S104
    http_port: int = Field(default=8790, ge=0, le=65535, description="Port of the health server; 0 = off.")
    synthetic_delay_seconds: float = Field(
        default=0.5, ge=0, description="Service time of the synthetic engine (benchmarks)."
    )

    @model_validator(mode="after")
    def _heartbeat_beats_the_ack_deadline(self) -> WorkerSettings:
        # A job's ack deadline is pushed back every heartbeat; a slower heartbeat would let JetStream
        # hand a running job to a second worker.
        if self.heartbeat_seconds * 2 > self.ack_wait_seconds:
            raise ValueError(
                f"TTS_WORKER_HEARTBEAT_SECONDS ({self.heartbeat_seconds}) must be at most half of "
                f"TTS_WORKER_ACK_WAIT_SECONDS ({self.ack_wait_seconds})"
            )
        return self

    def worker_id(self, slot: str) -> str:
        return f"{self.pod_name}/{slot}"
