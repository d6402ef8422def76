"""Writing a WAV under the shared root, atomically: a temporary name in the same folder, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from tts_api.shared_paths import SharedRoot


def process_umask() -> int:
    """This process's umask, read without changing it (os.umask would, racing other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def write_wav(root: SharedRoot, api_path: str, samples: npt.NDArray[np.int16], sample_rate: int) -> Path:
    """Write ``samples`` (mono int16) to ``api_path``; directories are created; returns the local path.

    Raises :class:`tts_api.shared_paths.SharedPathError` for a path outside the root, ``OSError`` when
    the volume refuses the write. A reader never sees a half-written file.
    """
    target = root.local_path(api_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    root.local_path(api_path)  # again, now that the folders exist: no link may lead outside
    handle, temporary = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".wav.part", dir=target.parent)
    os.close(handle)
    try:
        soundfile.write(temporary, samples, sample_rate, subtype="PCM_16", format="WAV")
        # mkstemp makes the file private; give it the mode a plain open() would, so that other
        # readers of the shared volume (the gateway, a pipeline's next step) can read it.
        os.chmod(temporary, 0o666 & ~process_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return target
