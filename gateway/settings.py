"""The gateway's settings, from ``TTS_GATEWAY_*`` variables (see docs/configuration.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    wait_for_workers: bool = Field(
        default=False,
        description="A speech request for a configured model that no worker serves now waits for one "
        "(the inference pods scale from zero; the chart's autoscaling.enabled) instead of 404.",
    )
    speech_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long a POST /v1/audio/speech may take in all; its workflow times out then.",
    )
    openai_voices: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="OpenAI voice names mapped to voices here, e.g. alloy=default,nova=female_01 "
        "(or a JSON object); an unmapped OpenAI voice is refused, naming the voices there are.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1,
        description="The largest request body accepted; a larger one is refused with 413 before it is read.",
    )
    voice_upload_max_bytes: int = Field(
        default=10 * 1_048_576,
        ge=1,
        description="The largest voice upload (POST /v1/audio/voices) accepted, form and clip together.",
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

    @field_validator("openai_voices", mode="before")
    @classmethod
    def _voice_pairs(cls, value: Any) -> Any:
        """``alloy=default,nova=female_01``, or a JSON object."""
        if not isinstance(value, str):
            return value
        if value.strip().startswith("{"):
            return json.loads(value)
        pairs = [pair.strip() for pair in value.split(",") if pair.strip()]
        mapped: dict[str, str] = {}
        for pair in pairs:
            name, sep, voice = pair.partition("=")
            if not sep or not name.strip() or not voice.strip():
                raise ValueError(f"{pair!r} is not name=voice; write e.g. alloy=default,nova=female_01")
            mapped[name.strip()] = voice.strip()
        return mapped
