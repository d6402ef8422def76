"""The shared root: API paths map onto this machine's directory and never leave it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tts_api.shared_paths import SharedPathError, SharedRoot


def test_api_prefix_maps_onto_a_local_folder(tmp_path: Path) -> None:
    """Local mode: the workflow API's /share/... paths land in a folder of this machine."""
    root = SharedRoot(directory=tmp_path, prefix="/share")
    assert root.local_path("/share/workflows/output/hello.wav") == tmp_path / "workflows/output/hello.wav"
    assert root.local_path("workflows/hello.wav") == tmp_path / "workflows/hello.wav"


def test_a_custom_prefix_is_honoured(tmp_path: Path) -> None:
    root = SharedRoot(directory=tmp_path, prefix="/mnt/tts/")
    assert root.prefix == "/mnt/tts"
    assert root.normalize("/mnt/tts/a.wav") == "/mnt/tts/a.wav"
    with pytest.raises(SharedPathError, match="under the shared root /mnt/tts/"):
        root.normalize("/share/a.wav")
    with pytest.raises(SharedPathError):
        root.normalize("/mnt/ttsx/a.wav")


@pytest.mark.parametrize("prefix", ["share", "/", "/share/../etc", ""])
def test_a_bad_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="shared prefix"):
        SharedRoot(prefix=prefix)


def test_a_symlinked_file_that_leaves_the_root_is_refused(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (share / "innocent.wav").symlink_to(tmp_path / "secret.wav")
    with pytest.raises(SharedPathError, match="symbolic link"):
        SharedRoot(directory=share).local_path("/share/innocent.wav")


def test_a_root_that_is_itself_a_symlink_is_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "share").symlink_to(real)
    root = SharedRoot(directory=tmp_path / "share")
    assert root.local_path("/share/a.wav") == tmp_path / "share" / "a.wav"


def test_other_suffixes_can_be_asked_for(tmp_path: Path) -> None:
    root = SharedRoot(directory=tmp_path)
    assert root.normalize("/share/presets.yaml", suffixes=(".yaml", ".yml")) == "/share/presets.yaml"
    assert root.normalize("/share/anything", suffixes=()) == "/share/anything"
    with pytest.raises(SharedPathError, match=r"\.yaml or \.yml"):
        root.normalize("/share/presets.json", suffixes=(".yaml", ".yml"))


def test_is_mounted(tmp_path: Path) -> None:
    assert SharedRoot(directory=tmp_path).is_mounted()
    assert not SharedRoot(directory=tmp_path / "absent").is_mounted()
