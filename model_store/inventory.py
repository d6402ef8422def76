"""What a model's folder holds: each file the engine reads present, missing, or damaged.

A file a pull recorded is checked against its hub ETag (``verify``); a file that is there without a
record (a volume filled by hand, an offline cluster) is counted as present, unverified.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from model_store.catalog import HubFiles, ModelSpec
from model_store.records import content_matches, read_records, record_key

FileState = Literal["ok", "unverified", "missing", "damaged"]


@dataclass(frozen=True)
class FileCheck:
    repo: str
    filename: str
    state: FileState

    @property
    def label(self) -> str:
        return f"{self.repo}/{self.filename}"


@dataclass(frozen=True)
class ModelCheck:
    spec: ModelSpec
    folder: Path
    files: list[FileCheck]

    @property
    def complete(self) -> bool:
        return all(check.state in ("ok", "unverified") for check in self.files)

    def with_state(self, state: FileState) -> list[FileCheck]:
        return [check for check in self.files if check.state == state]

    def summary(self) -> str:
        if not self.folder.is_dir():
            return "not pulled"
        if self.complete:
            unverified = len(self.with_state("unverified"))
            return "complete" + (f" ({unverified} files not pulled here, unverified)" if unverified else "")
        parts = []
        states: tuple[FileState, ...] = ("missing", "damaged")
        for state in states:
            found = self.with_state(state)
            if found:
                parts.append(f"{len(found)} {state}: " + ", ".join(check.label for check in found))
        return "incomplete: " + "; ".join(parts)


def every_file(spec: ModelSpec) -> list[tuple[HubFiles, str]]:
    return [(group, name) for group in (spec.checkpoint, *spec.auxiliaries) for name in group.files]


def locate(spec: ModelSpec, folder: Path, group: HubFiles, filename: str) -> Path | None:
    """Where the engine will read the file, when it is there."""
    if group is spec.checkpoint or group.placed is not None:
        path = folder / (group.placed or "") / filename
        return path if path.is_file() else None
    return hub_cache_file(spec.hub_cache(folder), group.repo, filename, group.revision)


def hub_cache_file(cache: Path | None, repo: str, filename: str, revision: str = "main") -> Path | None:
    """A file of ``repo`` in a hub cache laid out as huggingface_hub lays it out, when it is there.

    Read by path, without importing huggingface_hub: it fixes its cache folder (``HF_HOME``) when first
    imported, and a worker sets ``HF_HOME`` only as its engine loads. ``cache`` None: the default one.
    """
    if cache is None:
        home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface")
        cache = Path(os.environ.get("HF_HUB_CACHE") or home / "hub")
    folder = cache / f"models--{repo.replace('/', '--')}"
    ref = folder / "refs" / revision
    commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    path = folder / "snapshots" / commit / filename
    return path if path.is_file() else None


def check_model(spec: ModelSpec, folder: Path, *, verify: bool = True) -> ModelCheck:
    records = read_records(folder)
    checks: list[FileCheck] = []
    for group, filename in every_file(spec):
        path = locate(spec, folder, group, filename)
        record = records.get(record_key(group.repo, filename))
        state: FileState
        if path is None:
            state = "missing"
        elif record is None:
            state = "unverified"
        elif path.stat().st_size != record.size or (verify and not content_matches(path, record.etag)):
            state = "damaged"
        else:
            state = "ok"
        checks.append(FileCheck(group.repo, filename, state))
    return ModelCheck(spec, folder, checks)


def missing_files(spec: ModelSpec, folder: Path) -> list[str]:
    """The files the engine would fail to find (existence only: quick enough for every start)."""
    return [
        f"{group.repo}/{filename}"
        for group, filename in every_file(spec)
        if locate(spec, folder, group, filename) is None
    ]
