"""The gateway's view of the presets file: parsed once per version of the file, an edit seen at once,
a broken file a 503 naming what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.openai_errors import OpenAIError
from gateway.voice_presets import PresetsFile
from voice_library import presets as presets_module


def test_the_file_is_parsed_once_per_version_and_an_edit_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text("alice: {name: Alice, reference_audio: voices/alice.wav}\n")
    parsed: list[str] = []
    real = presets_module.parse_presets

    def counting(text: str, *, source: str = "presets file") -> presets_module.Presets:
        parsed.append(text)
        return real(text, source=source)

    monkeypatch.setattr(presets_module, "parse_presets", counting)
    presets = PresetsFile(path)
    assert set(presets()) == {"alice"}
    assert set(presets()) == {"alice"}
    assert len(parsed) == 1
    path.write_text("bob: {name: Bob, reference_audio: voices/bob.wav}\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert set(presets()) == {"bob"}
    assert len(parsed) == 2


def test_a_broken_or_missing_file_is_a_503_saying_so(tmp_path: Path) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text("alice: [not, a, preset]\n")
    with pytest.raises(OpenAIError) as broken:
        PresetsFile(path)()
    assert broken.value.status_code == 503
    assert "alice" in broken.value.message
    with pytest.raises(OpenAIError) as missing:
        PresetsFile(tmp_path / "absent.yaml")()
    assert "cannot read the presets file" in missing.value.message
    assert PresetsFile(None)() == {}
