"""Outputs on the shared volume: where a workflow may write, and the mark that says who wrote a file.

The rules (docs/api.md, "Outputs: where and whose"):

* an output lies under the **output folder**, ``<shared prefix>/<TTS_OUTPUT_DIR>`` (by default
  ``/share/workflows/output``), and with ``TTS_OUTPUT_PER_NAMESPACE`` under the workflow's
  namespace's folder within it;
* each name fits the filesystem (``NAME_MAX`` bytes a component, ``PATH_MAX`` a path);
* the service never writes over a file it did not write, nor over another workflow's audio: every WAV
  it writes carries an :class:`OutputMark` (who wrote it, and the result it reported) inside the file
  itself, in the WAV's ``LIST``/``INFO`` chunk (``ISFT`` names the writer, ``ICMT`` holds the mark as
  JSON). Inside the file, the mark is renamed into place with the audio, is read on any filesystem
  (NFS included, where extended attributes often are not) and cannot be separated from it the way a
  sidecar file can.

Reading a mark is plain file reading (no audio library), so the gateway can check an output path
before it accepts a workflow.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

WRITER = "indextts-k8s"
DEFAULT_OUTPUT_DIR = "workflows/output"
# What most filesystems allow; the volume's own limits are read where it is mounted.
DEFAULT_NAME_MAX = 255
DEFAULT_PATH_MAX = 4096
# A mark is a few hundred bytes; anything far larger in its place is not one.
MAX_MARK_BYTES = 64 * 1024


class OutputRuleError(ValueError):
    """An output path that breaks an output rule; the message says which and what to change."""


class OutputMark(BaseModel):
    """Who wrote an output: the workflow (its uid is what counts), the stage, and what it reported."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    writer: str = WRITER
    workflow_uid: str = Field(min_length=1)
    namespace: str | None = None
    name: str = ""
    stage: str = Field(min_length=1, description="The task's short name, as in the job id.")
    job_id: str = ""
    result: dict[str, Any] | None = Field(
        default=None, description="The speech result reported for this file (tts_api.results)."
    )

    def owner(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"workflow {where}{self.name or '?'} (uid {self.workflow_uid})"


# --- where outputs may go: lexical rules ----------------------------------------------------------


def output_folder(shared_prefix: str, output_dir: str, namespace: str | None = None) -> str:
    """The API path of the folder outputs must lie under (``/share/workflows/output``)."""
    parts = [part for part in PurePosixPath(output_dir).parts if part not in ("/", ".")]
    if namespace is not None:
        parts.append(namespace)
    return str(PurePosixPath(shared_prefix, *parts))


def check_output_location(canonical: str, folder: str, *, setting: str) -> None:
    """Raise :class:`OutputRuleError` unless ``canonical`` (an API path) lies below ``folder``."""
    required = PurePosixPath(folder).parts
    if PurePosixPath(canonical).parent.parts[: len(required)] != required:
        example = f"{folder}/{PurePosixPath(canonical).name}"
        raise OutputRuleError(
            f"must be under the output folder {folder}/ ({setting}), for example {example}; got {canonical}"
        )


def check_name_lengths(
    canonical: str,
    *,
    name_max: int = DEFAULT_NAME_MAX,
    path_max: int = DEFAULT_PATH_MAX,
    local: Path | None = None,
) -> None:
    """Raise :class:`OutputRuleError` when a component or the whole path is longer than allowed.

    Lengths are bytes of the UTF-8 name, as the kernel counts them (a Chinese character is 3).
    """
    for part in PurePosixPath(canonical).parts[1:]:
        size = len(part.encode())
        if size > name_max:
            raise OutputRuleError(
                f"the name {_shorten(part)!r} is {size} bytes; the shared volume allows at most "
                f"{name_max} bytes a name (NAME_MAX): shorten it"
            )
    whole = len(os.fsencode(local)) if local is not None else len(canonical.encode())
    if whole >= path_max:
        raise OutputRuleError(
            f"is {whole} bytes long on the volume; at most {path_max - 1} are allowed (PATH_MAX): "
            "use fewer or shorter folders"
        )


def _shorten(name: str) -> str:
    return name if len(name) <= 40 else f"{name[:20]}...{name[-12:]}"


# --- on the volume ---------------------------------------------------------------------------


def volume_limits(local: Path) -> tuple[int, int]:
    """``NAME_MAX`` and ``PATH_MAX`` of the filesystem holding ``local`` (its nearest existing folder)."""
    folder = local.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX, DEFAULT_PATH_MAX


def check_output_on_volume(canonical: str, local: Path) -> None:
    """The checks that need the volume: names within its limits, and not a folder."""
    name_max, path_max = volume_limits(local)
    check_name_lengths(canonical, name_max=name_max, path_max=path_max, local=local)
    if local.is_dir():
        raise OutputRuleError(f"{canonical} is a folder on the shared volume; name a .wav file inside it")


def check_output_owner(canonical: str, local: Path, workflow_uid: str | None) -> OutputMark | None:
    """Who may write ``local``: None when it holds no file, its mark when that names ``workflow_uid``.

    Raises :class:`OutputRuleError` for any other file: a file the service did not write is never
    replaced; one another workflow wrote is that workflow's audio until the workflow is deleted (its
    audio with it). A new workflow (``workflow_uid`` None) owns no file yet.
    """
    if not local.exists():
        return None
    try:
        mark = read_mark(local)
    except OSError:
        mark = None
    if mark is None:
        raise OutputRuleError(
            f"{canonical} already exists and was not written by this service; it is never written "
            "over: choose another output_path"
        )
    if workflow_uid is not None and mark.workflow_uid == workflow_uid:
        return mark
    raise OutputRuleError(
        f"{canonical} holds the audio of {mark.owner()}; choose another output_path, or delete that "
        "workflow first (its audio is deleted with it)"
    )


def check_output_free(canonical: str, local: Path) -> None:
    """For a new workflow: ``local`` must hold no file, which it would write over."""
    check_output_owner(canonical, local, None)


# --- the mark, in the WAV's LIST/INFO chunk ------------------------------------------------------


def _subchunk(chunk_id: bytes, text: bytes) -> bytes:
    body = text + b"\0"
    return chunk_id + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def info_chunk(mark: OutputMark) -> bytes:
    """The ``LIST``/``INFO`` chunk that carries ``mark`` (appended after a WAV's data)."""
    body = b"INFO" + _subchunk(b"ISFT", WRITER.encode()) + _subchunk(b"ICMT", mark.model_dump_json().encode())
    return b"LIST" + struct.pack("<I", len(body)) + body


def wav_bytes(pcm: bytes, sample_rate: int, mark: OutputMark) -> bytes:
    """A mono 16-bit PCM WAV of ``pcm`` (little-endian samples) carrying ``mark``."""
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    data = pcm + (b"\0" if len(pcm) % 2 else b"")
    fmt_chunk = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    data_chunk = b"data" + struct.pack("<I", len(pcm)) + data
    chunks = fmt_chunk + data_chunk + info_chunk(mark)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def read_mark(path: Path) -> OutputMark | None:
    """The mark in the WAV at ``path``, or None when it has none (or is no WAV); OSError if unreadable."""
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if chunk_id == b"LIST" and size <= MAX_MARK_BYTES:
                found = _mark_in_list(handle.read(size))
                if found is not None:
                    return found
                handle.seek(size % 2, os.SEEK_CUR)
            else:
                handle.seek(size + size % 2, os.SEEK_CUR)


def _mark_in_list(body: bytes) -> OutputMark | None:
    if body[:4] != b"INFO":
        return None
    fields: dict[bytes, bytes] = {}
    offset = 4
    while offset + 8 <= len(body):
        sub_id, size = body[offset : offset + 4], struct.unpack("<I", body[offset + 4 : offset + 8])[0]
        fields[sub_id] = body[offset + 8 : offset + 8 + size].rstrip(b"\0")
        offset += 8 + size + size % 2
    if fields.get(b"ISFT") != WRITER.encode() or b"ICMT" not in fields:
        return None
    try:
        mark = OutputMark.model_validate(json.loads(fields[b"ICMT"]))
    except (ValueError, ValidationError):
        return None
    return mark if mark.writer == WRITER else None
