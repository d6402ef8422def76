"""Writing a WAV under the shared root, atomically, and what the volume's refusals mean.

A WAV is written whole to a temporary file in its own folder, flushed to the disk (``fsync``), then
renamed over the target, and the folder is flushed too: a reader sees the old file or the new one,
never a part, and a crash leaves at most a ``.tts-*.part`` file behind. Every WAV carries the
:class:`~tts_api.outputs.OutputMark` of the workflow that wrote it.

:func:`write_failure` turns the errno of a refused write into the workflow API's error: the user's
fault (a name too long, a folder in the way) is ``INVALID_INPUT``; the volume's (read-only, full,
no permission) is ``PROCESSING_ERROR`` marked final, since no retry seconds later can fix it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference_pod.outcomes import FinalError
from tts_api.errors import ErrorCode, TTSError, invalid_input
from tts_api.outputs import OutputMark, wav_bytes
from tts_api.shared_paths import SharedRoot

# Below this much free space the worker does not start a synthesis whose audio it could not keep.
MIN_FREE_BYTES = 1024 * 1024

_USERS_FAULT = {errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.ELOOP, errno.EEXIST}
_FULL = {errno.ENOSPC, errno.EDQUOT}


def pcm16(samples: npt.NDArray[np.int16]) -> bytes:
    return np.ascontiguousarray(samples, dtype="<i2").tobytes()


def write_wav(
    root: SharedRoot, api_path: str, samples: npt.NDArray[np.int16], sample_rate: int, mark: OutputMark
) -> Path:
    """Write ``samples`` (mono int16) with ``mark`` to ``api_path``; folders are created.

    Raises :class:`tts_api.shared_paths.SharedPathError` for a path outside the root, ``OSError`` when
    the volume refuses the write. A reader never sees a half-written file.
    """
    target = root.local_path(api_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    root.local_path(api_path)  # again, now that the folders exist: no link may lead outside
    data = wav_bytes(pcm16(samples), sample_rate, mark)
    # A short name of its own: the target's name may already be as long as the volume allows.
    temporary = target.parent / f".tts-{secrets.token_hex(8)}.part"
    # O_EXCL: never through a link planted under that name; the umask gives the mode a plain open()
    # would, so that other readers of the volume (the gateway, a pipeline's next step) can read it.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    sync_folder(target.parent)
    return target


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to the disk; some filesystems cannot, and need not."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def free_bytes(local: Path) -> tuple[int, bool] | None:
    """Free bytes for this process and whether the volume is mounted read-only, at ``local``'s folder."""
    folder = local.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize, bool(stats.f_flag & os.ST_RDONLY)


def preflight(api_path: str, local: Path) -> None:
    """Refuse before synthesizing when the volume cannot take the audio: read-only, or full."""
    found = free_bytes(local)
    if found is None:
        return
    available, read_only = found
    if read_only:
        raise write_failure(errno.EROFS, api_path, available)
    if available < MIN_FREE_BYTES:
        raise write_failure(errno.ENOSPC, api_path, available)


def write_failure(
    code: int | None, api_path: str, available: int | None, needed: int | None = None
) -> TTSError:
    """The workflow API's error for a write of ``api_path`` refused with errno ``code``."""
    name = errno.errorcode.get(code, str(code)) if code is not None else "unknown"
    reason = os.strerror(code) if code is not None else "unknown error"
    if code in _USERS_FAULT:
        return invalid_input(
            "output_path", f"cannot be written: {reason} ({name}) at {api_path}; choose another path"
        )
    if code == errno.EROFS:
        return FinalError(
            ErrorCode.PROCESSING_ERROR,
            f"the shared volume is read-only ({name}) where {api_path} goes: an operator must mount it "
            "read-write on the inference pods; the request itself is fine, submit it again then",
        )
    if code in _FULL:
        free = f"{available:,} bytes free" if available is not None else "free space unknown"
        wanted = f", {needed:,} needed" if needed is not None else ""
        return FinalError(
            ErrorCode.PROCESSING_ERROR,
            f"the shared volume is full ({name}: {free}{wanted}) where {api_path} goes: an operator "
            "must free space or grow the volume (deleting finished workflows deletes their audio); "
            "submit the request again then",
        )
    if code in (errno.EACCES, errno.EPERM):
        return FinalError(
            ErrorCode.PROCESSING_ERROR,
            f"the inference pods may not write {api_path} ({name}: {reason}): an operator must give "
            "their user write access to the shared volume (the chart's fsGroup)",
        )
    return TTSError(
        ErrorCode.PROCESSING_ERROR, f"cannot write {api_path} on the shared volume: {reason} ({name})"
    )
