"""The voice library: presets from a mounted file, name -> reference audio, description, language, gender.

The gateway reads the names (an unknown one is refused at once); the worker resolves a name to its
audio and lists the presets. Both read the same file through this module.

The file is YAML (or JSON, which YAML reads)::

    default:
      name: Default Voice
      description: 默认语音
      language: zh-CN
      gender: female
      reference_audio: /share/voices/default.wav

``reference_audio`` (or ``emotion_reference``) in a request may name a preset instead of a path.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tts_api.errors import invalid_input
from tts_api.request import is_preset_name
from tts_api.results import VoicePreset, VoicePresetList


class PresetError(ValueError):
    """The presets file cannot be used; the message says what to fix in it."""


class PresetEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    language: str = ""
    gender: str = ""
    reference_audio: str = Field(min_length=1, description="A .wav path under the shared root.")

    @field_validator("reference_audio")
    @classmethod
    def _is_path(cls, value: str) -> str:
        if is_preset_name(value):
            raise ValueError("must be a .wav path under the shared root, not another preset's name")
        return value

    def public(self) -> VoicePreset:
        """What list_voice_presets shows (no path)."""
        return VoicePreset(
            name=self.name, description=self.description, language=self.language, gender=self.gender
        )


Presets = dict[str, PresetEntry]


def parse_presets(text: str, *, source: str = "presets file") -> Presets:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PresetError(f"{source} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PresetError(f"{source} must map preset names to presets")
    presets: Presets = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not is_preset_name(key):
            raise PresetError(
                f"{source}: preset name {key!r} must be 1-63 letters, digits, '_' or '-' (no '/' or '.')"
            )
        try:
            presets[key] = PresetEntry.model_validate(value)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "entry"
            raise PresetError(f"{source}: preset {key!r}: {where}: {first['msg']}") from None
    return presets


def load_presets(path: Path | None) -> Presets:
    """The presets in ``path``; none when no file is configured."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PresetError(f"cannot read the presets file {path}: {exc.strerror}") from None
    return parse_presets(text, source=str(path))


def reference_audio(field: str, value: str, presets: Presets) -> str:
    """The audio path that ``value`` names: a preset's audio, or ``value`` itself when it is a path."""
    if not is_preset_name(value):
        return value
    preset = presets.get(value)
    if preset is None:
        listing = ", ".join(sorted(presets)) or "none are configured on this worker"
        raise invalid_input(field, f"{value!r} is not a voice preset (presets: {listing})")
    return preset.reference_audio


def preset_list(presets: Presets) -> VoicePresetList:
    """The list_voice_presets result: every preset's public fields."""
    return VoicePresetList(
        presets={name: entry.public() for name, entry in presets.items()}, total_count=len(presets)
    )
