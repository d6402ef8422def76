"""What a pull leaves beside the files: a record (``.pulled.json``) of each file's hub ETag and size,
and the check that a file on disk is the one its ETag names.

The hub's ETag of a large (LFS) file is the SHA-256 of its content; of a small one, the git blob's
SHA-1. Either is checked here, so that a file damaged on disk (or cut short) is found, not loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_FILE = ".pulled.json"
# Written once every file is there and checked: inference pods may start on the folder.
COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class FileRecord:
    repo: str
    filename: str
    path: str  # relative to the model's folder
    etag: str
    size: int


def content_matches(path: Path, etag: str) -> bool:
    """Whether the file's content is the one ``etag`` names (True when the ETag is neither form)."""
    etag = etag.strip('"').removeprefix("W/").strip('"')
    if len(etag) == 64:
        digest = hashlib.sha256()
    elif len(etag) == 40:
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % path.stat().st_size)
    else:
        return True
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest() == etag.lower()


def record_key(repo: str, filename: str) -> str:
    return f"{repo}:{filename}"


def read_records(folder: Path) -> dict[str, FileRecord]:
    try:
        raw = json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    try:
        return {key: FileRecord(**value) for key, value in raw.get("files", {}).items()}
    except TypeError:
        return {}


def write_records(folder: Path, model: str, records: dict[str, FileRecord]) -> None:
    """The records, written whole to a temporary file and renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    body = {"model": model, "files": {key: asdict(record) for key, record in sorted(records.items())}}
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".pulled-", suffix=".json")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        json.dump(body, out, indent=1)
    os.replace(temporary, folder / RECORD_FILE)
