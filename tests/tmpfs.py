"""A small tmpfs mounted for one test: a disk that can be made full or read-only. Mounting needs
root; where it cannot be mounted the test is skipped, saying why."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """``where`` (made if missing) as a tmpfs of ``size`` (``300k``, ``64m``) with mount ``options``
    (``ro``), unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (a read-only or full volume cannot be made otherwise)")
    command = ["mount", "-t", "tmpfs", "-o", ",".join((f"size={size}", *options)), "tmpfs", str(where)]
    made = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if made.returncode != 0:
        pytest.skip(f"cannot mount a {size} tmpfs at {where}: {made.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)  # noqa: S603, S607
