"""Paths on the shared volume: how the API names them and where they are on this machine.

Requests name files by *API paths* such as ``/share/workflows/output/hello.wav`` (the workflow API's form),
or relative to the shared root (``workflows/output/hello.wav``). A :class:`SharedRoot` maps the API
prefix (``/share`` by default) onto a directory of this machine: ``/share`` itself in the cluster, a
local folder in local mode. Nothing may escape the root: no ``..`` segment, no absolute path
elsewhere, and no symbolic link that leads outside.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

DEFAULT_SHARED_PREFIX = "/share"
# How far a path may nest; keeps error messages and filesystem walks bounded.
MAX_PATH_LENGTH = 1024


class SharedPathError(ValueError):
    """A path that breaks a shared-root rule; the message says which rule and how to fix it."""


@dataclass(frozen=True)
class SharedRoot:
    """The shared volume: ``prefix`` is how the API names it, ``directory`` where it is here."""

    directory: Path = Path(DEFAULT_SHARED_PREFIX)
    prefix: str = DEFAULT_SHARED_PREFIX
    _prefix_parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = PurePosixPath(self.prefix)
        if not prefix.is_absolute() or ".." in prefix.parts or len(prefix.parts) < 2:
            raise ValueError(f"shared prefix must be an absolute path below '/', got {self.prefix!r}")
        object.__setattr__(self, "prefix", str(prefix))
        object.__setattr__(self, "_prefix_parts", prefix.parts)

    # --- lexical rules: no filesystem access ---------------------------------------------------

    def normalize(self, raw: str, *, suffixes: tuple[str, ...] = (".wav",)) -> str:
        """Return the canonical API path for ``raw`` or raise :class:`SharedPathError`.

        The canonical form is absolute, under the prefix, with ``.`` segments and repeated slashes
        removed, e.g. ``workflows//out/./a.wav`` becomes ``/share/workflows/out/a.wav``.
        """
        if not raw or not raw.strip():
            raise SharedPathError("must not be empty")
        if raw != raw.strip():
            raise SharedPathError("must not start or end with whitespace")
        if len(raw) > MAX_PATH_LENGTH:
            raise SharedPathError(f"must be at most {MAX_PATH_LENGTH} characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in raw):
            raise SharedPathError("must not contain control characters")
        if raw.endswith("/"):
            raise SharedPathError("must name a file, not a directory (remove the trailing '/')")
        if ".." in raw.split("/"):
            raise SharedPathError("must not contain '..' segments; name the file under the shared root")
        path = PurePosixPath(raw)
        if path.is_absolute():
            if path.parts[: len(self._prefix_parts)] != self._prefix_parts:
                raise SharedPathError(
                    f"must be under the shared root {self.prefix}/ (for example "
                    f"{self.prefix}/workflows/output/speech.wav), got {raw!r}"
                )
            relative = path.parts[len(self._prefix_parts) :]
        else:
            relative = path.parts
        if not relative:
            raise SharedPathError(f"must name a file under {self.prefix}/, not the root itself")
        if suffixes and not relative[-1].lower().endswith(suffixes):
            raise SharedPathError(f"must name a {' or '.join(suffixes)} file, got {relative[-1]!r}")
        return str(PurePosixPath(self.prefix, *relative))

    # --- the same path on this machine -----------------------------------------------------------

    def local_path(self, api_path: str, *, suffixes: tuple[str, ...] = (".wav",)) -> Path:
        """Where ``api_path`` lies on this machine, checked against symbolic links that escape."""
        canonical = PurePosixPath(self.normalize(api_path, suffixes=suffixes))
        local = self.directory.joinpath(*canonical.parts[len(self._prefix_parts) :])
        real_root = Path(os.path.realpath(self.directory))
        real = Path(os.path.realpath(local))
        if real != real_root and real_root not in real.parents:
            raise SharedPathError(
                f"resolves through a symbolic link to {real}, outside the shared root {self.prefix}/"
            )
        return local

    def is_mounted(self) -> bool:
        """True when the shared directory exists here, so that on-disk checks can run."""
        return self.directory.is_dir()
