"""The gateway's settings, from ``TTS_GATEWAY_*`` variables (see docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TTS_GATEWAY_", extra="ignore")

    host: str = Field(default="0.0.0.0", description="Address to listen on.")  # noqa: S104 (a server)
    port: int = Field(
        default=8788, ge=1, le=65535, description="Port to listen on (the workflow API's port)."
    )
    metrics_port: int = Field(
        default=8789,
        ge=0,
        le=65535,
        description="Port of the monitoring listener: /healthz, /readyz and /metrics without the API key, "
        "for probes and Prometheus; 0: none (the API port serves them too, /readyz and /metrics behind "
        "the key).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint but /healthz requires it in X-API-Key or "
        "Authorization: Bearer.",
    )
    sync_wait_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long POST /v1/workflows waits for the result before answering 202 with the "
        "workflow id (the workflow goes on).",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="The largest request body accepted; a larger one is refused with 413 before it is read.",
    )
    body_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="How long a client may take to send a request's body; a slower one is answered 408 "
        "and its connection closed.",
    )
    nats_url: str = Field(default="nats://127.0.0.1:4222", description="NATS server (worker registry).")
    namespace: str = Field(default="default", description="Namespace of the TTSWorkflows (cluster mode).")
    presets_file: Path | None = Field(
        default=None,
        description="The inference pods' voice-preset file: with it, a request naming an unknown preset "
        "is refused at once, naming the field.",
    )
