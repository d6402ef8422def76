"""Pulling a model from the hub with ``huggingface_hub``: only the files its engine reads, each checked
against its ETag, a file already there and sound left alone.

The hub is ``HF_ENDPOINT`` (a mirror, or a server of your own) and ``HF_TOKEN`` is sent when set, as
``huggingface_hub`` does. A connection that drops mid-file is resumed from where it stopped (an HTTP
range request); a pull stopped altogether keeps every file it finished, and the next one fetches only
the rest. A damaged file (its content no longer what its ETag names) is fetched again.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from model_store.catalog import HubFiles, ModelSpec
from model_store.inventory import every_file, locate
from model_store.records import (
    COMPLETE_MARKER,
    FileRecord,
    content_matches,
    read_records,
    record_key,
    write_records,
)

log = logging.getLogger(__name__)

Say = Callable[[str], None]


class ModelPullError(RuntimeError):
    """The pull could not finish; the message says which file and what to do."""


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def pull_model(spec: ModelSpec, root: Path, *, token: str | None = None, say: Say = _stderr) -> Path:
    """Pull ``spec`` into ``root/<name>``; returns that folder once every file is there and sound
    (then ``.complete`` is written), or raises :class:`ModelPullError`."""
    folder = spec.folder(root)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPLETE_MARKER).unlink(missing_ok=True)
    records = read_records(folder)
    wanted = every_file(spec)
    for number, (group, filename) in enumerate(wanted, start=1):
        where = f"[{number}/{len(wanted)}] {group.repo}/{filename}"
        etag, size = _remote(group, filename, token)
        have = locate(spec, folder, group, filename)
        if have is not None and content_matches(have, etag):
            say(f"{where}: already here")
            path = have
        else:
            damaged = have is not None
            say(f"{where}: {'fetching again (damaged)' if damaged else 'fetching'} ({_size(size)})")
            path = _download(spec, folder, group, filename, token, force=damaged)
            if not content_matches(path, etag):
                path.unlink(missing_ok=True)
                raise ModelPullError(
                    f"{group.repo}/{filename} arrived damaged (its content does not match the hub's "
                    f"checksum {etag}); pull again, and check the mirror at HF_ENDPOINT if it persists"
                )
        relative = str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)
        records[record_key(group.repo, filename)] = FileRecord(
            group.repo, filename, relative, etag, path.stat().st_size
        )
        write_records(folder, spec.name, records)
    (folder / COMPLETE_MARKER).write_text(f"{spec.name}\n", encoding="utf-8")
    say(f"{spec.name}: complete in {folder}")
    return folder


def _remote(group: HubFiles, filename: str, token: str | None) -> tuple[str, int | None]:
    """The file's ETag and size at the hub."""
    url = hf_hub_url(group.repo, filename, revision=group.revision)
    try:
        metadata = get_hf_file_metadata(url, token=token)
    except Exception as exc:
        raise _explained(exc, group, filename) from None
    if not metadata.etag:
        raise ModelPullError(
            f"{group.repo}/{filename}: the hub answered without an ETag; is HF_ENDPOINT a hub?"
        )
    return metadata.etag, metadata.size


def _download(
    spec: ModelSpec, folder: Path, group: HubFiles, filename: str, token: str | None, *, force: bool
) -> Path:
    try:
        if group is spec.checkpoint or group.placed is not None:
            found = hf_hub_download(
                group.repo,
                filename,
                revision=group.revision,
                local_dir=folder / (group.placed or ""),
                token=token,
                force_download=force,
            )
        else:
            found = hf_hub_download(
                group.repo,
                filename,
                revision=group.revision,
                cache_dir=spec.hub_cache(folder),
                token=token,
                force_download=force,
            )
    except Exception as exc:
        raise _explained(exc, group, filename) from None
    return Path(found)


def _explained(exc: Exception, group: HubFiles, filename: str) -> ModelPullError:
    """A hub or network failure as a message that says what to change."""
    what = f"{group.repo}/{filename}"
    if isinstance(exc, GatedRepoError):
        return ModelPullError(
            f"{group.repo} is gated: accept its terms on the hub and set HF_TOKEN to a token that may read it"
        )
    if isinstance(exc, RepositoryNotFoundError):
        return ModelPullError(
            f"the repository {group.repo} was not found at the hub (HF_ENDPOINT), or needs a token: "
            "check the mirror, or set HF_TOKEN"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelPullError(f"{group.repo} has no revision {group.revision!r}")
    if isinstance(exc, EntryNotFoundError):
        return ModelPullError(f"{what} is not in the repository: the mirror may hold another version of it")
    if isinstance(exc, HfHubHTTPError):
        return ModelPullError(f"{what}: the hub answered {exc}; pull again later (finished files are kept)")
    if isinstance(exc, OSError):
        return ModelPullError(f"{what}: {exc}; pull again (finished files are kept)")
    return ModelPullError(f"{what}: {type(exc).__name__}: {exc}; pull again (finished files are kept)")


def _size(size: int | None) -> str:
    if size is None:
        return "size unknown"
    if size < 1 << 20:
        return f"{size / 1024:.1f} KB"
    if size < 1 << 30:
        return f"{size / (1 << 20):.1f} MB"
    return f"{size / (1 << 30):.2f} GB"
