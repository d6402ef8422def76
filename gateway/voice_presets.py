"""The presets file as the gateway reads it: afresh on each call, so an edited file (a ConfigMap that
changed) is seen without a restart, and a broken one answers 503 saying what is wrong with it."""

from __future__ import annotations

from gateway.openai_errors import OpenAIError
from gateway.settings import GatewaySettings
from voice_library.presets import PresetError, Presets, load_presets


def presets_of(settings: GatewaySettings) -> Presets:
    try:
        return load_presets(settings.presets_file)
    except PresetError as exc:
        raise OpenAIError(
            503, f"the voice presets cannot be read: {exc}", code="voices_unavailable"
        ) from None
