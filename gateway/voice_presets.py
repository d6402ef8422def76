"""The presets file as the gateway reads it: read again whenever the file changed (a ConfigMap that was
updated is seen without a restart), not on every request; a broken one answers 503 saying what is
wrong with it."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.openai_errors import OpenAIError
from voice_library.presets import PresetError, Presets, load_presets


class PresetsFile:
    """``presets()`` is the file's presets, parsed once per version of the file (its mtime and size)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._presets: Presets = {}

    def __call__(self) -> Presets:
        if self.path is None:
            return {}
        try:
            stat = os.stat(self.path)
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = None  # load_presets says what is wrong with it
        if version is None or version != self._seen:
            try:
                self._presets = load_presets(self.path)
            except PresetError as exc:
                raise OpenAIError(
                    503, f"the voice presets cannot be read: {exc}", code="voices_unavailable"
                ) from None
            self._seen = version
        return self._presets
