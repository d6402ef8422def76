"""The import contracts in pyproject.toml hold on this tree, and break when a wall is crossed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ["tts_api", "tts_cli", "gateway", "inference_pod", "local_mode", "kube_access", "voice_library"]
PACKAGES += ["nats_support", "operator/tts_operator"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (the venv's own lint-imports)
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": f"{root}:{root / 'operator'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_the_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_walls_hold() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("gateway/metrics.py", "import tts_operator.reconcile", "the gateway imports neither"),
        ("gateway/metrics.py", "import torch", "the gateway imports neither"),
        ("tts_api/constants.py", "import subprocess", "tts_api holds models and rules"),
        ("tts_api/constants.py", "import nats", "tts_api holds models and rules"),
        ("inference_pod/gpu.py", "import gateway.app", "the inference pod imports neither"),
        ("operator/tts_operator/conditions.py", "import kubernetes", "the reconcile core decides"),
        ("operator/tts_operator/metrics.py", "import gateway.auth", "the operator imports neither"),
        ("kube_access/client.py", "import tts_operator.store", "the shared modules"),
    ],
)
def test_crossing_a_wall_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_the_tree(tmp_path)
    with (tree / module).open("a") as source:
        source.write(f"\n{line}  # crossing a wall\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    report = " ".join(result.stdout.split())  # long contract names wrap
    broken = report.split("Broken contracts", 1)[1]
    assert contract in broken
    importer = module.removeprefix("operator/").removesuffix(".py").replace("/", ".")
    assert f"{importer} -> {line.split()[1]}" in broken
