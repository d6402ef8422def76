"""The product speaks of itself: the API it mirrors is "the IndexTTS service API (v1)" or "the
workflow API", everywhere in the repository (code, tests, docs, chart, examples)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The word for the original API (not ``manual_seed``), and numbered references to work items.
FORBIDDEN = re.compile(r"(?<![\w-])seeds?(?![\w-])|\bissue\s+#?\d+", re.IGNORECASE)
# The sampling meaning of a seed is the one allowed: "random seed", "seed=42", "a seed of".
SAMPLING = re.compile(r"\.seed\(|random[ -]seed|seed\s*[=:]\s*\d|\bseed (value|of \d)", re.IGNORECASE)


def tracked_text_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = subprocess.run(
        ["git", "ls-files", "-z"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    files = []
    for name in filter(None, listing.split("\0")):
        path = ROOT / name
        own = path == Path(__file__).resolve()  # this file spells the patterns out
        if (
            path.is_file()
            and not path.is_symlink()
            and not own
            and path.suffix not in {".wav", ".png", ".tgz"}
        ):
            files.append(path)
    return files


def test_no_file_calls_the_api_anything_but_its_own_name() -> None:
    offending: list[str] = []
    for path in tracked_text_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if FORBIDDEN.search(line) and not SAMPLING.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offending, "\n".join(offending)
