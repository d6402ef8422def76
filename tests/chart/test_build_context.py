"""The images' build context: what .dockerignore lets in is enough to `pip install .` the project.

No Docker engine runs here, so this rebuilds the context by hand (the .dockerignore rules on the
working tree) and builds the project's wheel from it, as the Dockerfile's venv stage does.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kube_testbed.helm import REPO

PACKAGES = {"tts_api", "tts_cli", "gateway", "inference_pod", "tts_operator"}


def build_context(destination: Path) -> Path:
    """Copy the files .dockerignore lets in (its `*` then `!path` rules, then exclusions)."""
    rules = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    allowed = [rule[1:].rstrip("/") for rule in rules if rule.startswith("!")]
    excluded = [rule.removeprefix("**/") for rule in rules[1:] if not rule.startswith("!")]
    for entry in allowed:
        source = REPO / entry
        target = destination / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*excluded, "*.egg-info"))
        else:
            shutil.copy2(source, target)
    return destination


def test_the_build_context_leaves_out_tests_caches_and_the_environment(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    names = {path.relative_to(context).as_posix() for path in context.rglob("*")}
    for unwanted in (".venv", ".git", ".cache", "tests", "e2e", "charts"):
        assert not any(name == unwanted or name.startswith(unwanted + "/") for name in names), unwanted
    assert not any(fnmatch.fnmatch(name, "*__pycache__*") for name in names)


@pytest.mark.timeout(180)
def test_the_build_context_builds_the_wheel_the_images_install(tmp_path: Path) -> None:
    context = build_context(tmp_path / "context")
    # With build isolation, as the image's `pip install .` builds it: the build backend is the one
    # pyproject.toml asks for, not whichever setuptools this environment happens to hold.
    done = subprocess.run(  # noqa: S603 (this Python's pip, fixed arguments)
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
         "--wheel-dir", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("indextts_k8s-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
        assert top == PACKAGES
        (entry_points,) = [name for name in names if name.endswith(".dist-info/entry_points.txt")]
        assert "indextts-k8s = tts_cli.main:main" in archive.read(entry_points).decode()
