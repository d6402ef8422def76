"""The voice library as both APIs see it: the presets file's voices, then the stored (uploaded or
applied) voices, under one set of names.

A preset keeps its name when a stored voice has the same one (an upload cannot take a preset's
name; a TTSVoice applied with one is shadowed and logged). Workers turn a name into its clip here;
the gateway lists, checks and shows voices here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from tts_api.request import is_preset_name
from tts_api.voices import VoiceRecord
from voice_library.presets import PresetEntry, Presets
from voice_library.store import VoiceStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryVoice:
    name: str
    display_name: str
    description: str
    language: str
    gender: str
    audio: str
    source: Literal["preset", "library"]
    sha256: str | None = None
    duration_seconds: float | None = None
    emotion_text: str | None = None
    emotion_alpha: float | None = None

    @classmethod
    def of_preset(cls, name: str, entry: PresetEntry) -> LibraryVoice:
        return cls(
            name=name,
            display_name=entry.name,
            description=entry.description,
            language=entry.language,
            gender=entry.gender,
            audio=entry.reference_audio,
            source="preset",
        )

    @classmethod
    def of_record(cls, record: VoiceRecord) -> LibraryVoice:
        spec = record.spec
        return cls(
            name=record.name,
            display_name=spec.display_name or record.name,
            description=spec.description,
            language=spec.language,
            gender=spec.gender,
            audio=spec.audio,
            source="library",
            sha256=spec.sha256,
            duration_seconds=spec.duration_seconds,
            emotion_text=spec.emotion_text,
            emotion_alpha=spec.emotion_alpha,
        )

    def preset(self) -> PresetEntry:
        """The voice as a preset entry (what ``list_voice_presets`` and path resolution read)."""
        return PresetEntry(
            name=self.display_name,
            description=self.description,
            language=self.language,
            gender=self.gender,
            reference_audio=self.audio,
        )


class VoiceLibrary:
    """Presets (read through ``presets``, so a changed file is seen) and the ``store``'s voices."""

    def __init__(self, presets: Callable[[], Presets], store: VoiceStore) -> None:
        self._presets = presets
        self.store = store

    def presets(self) -> Presets:
        return self._presets()

    async def voices(self) -> list[LibraryVoice]:
        presets = self._presets()
        found = [LibraryVoice.of_preset(name, entry) for name, entry in sorted(presets.items())]
        for record in await self.store.list():
            if record.name in presets:
                log.warning("the voice %s is shadowed by the preset of the same name", record.name)
                continue
            found.append(LibraryVoice.of_record(record))
        return found

    async def find(self, name: str) -> LibraryVoice | None:
        presets = self._presets()
        if name in presets:
            return LibraryVoice.of_preset(name, presets[name])
        record = await self.store.get(name)
        return LibraryVoice.of_record(record) if record is not None else None

    async def presets_for(self, names: Iterable[str | None]) -> Presets:
        """The presets with the stored voices among ``names`` added: what a job's paths resolve with."""
        presets = dict(self._presets())
        for name in names:
            if name is None or name in presets or not is_preset_name(name):
                continue
            voice = await self.find(name)
            if voice is not None:
                presets[name] = voice.preset()
        return presets

    async def every_preset(self) -> Presets:
        """Every voice as a preset entry: what ``list_voice_presets`` lists."""
        return {voice.name: voice.preset() for voice in await self.voices()}
