"""Running the chart through the real helm binary (fetched by scripts/fetch_helm.py), as data."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "indextts"
CPU_VALUES = CHART / "values-cpu.yaml"
FETCH_HELM = REPO / "scripts" / "fetch_helm.py"
RELEASE = "tts"
NAMESPACE = "speech"
HELM_TIMEOUT_SECONDS = 60

Manifest = dict[str, Any]


def fetch_helm() -> Path:
    """The project's helm, through the project's own script (as `make test` gets it)."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(FETCH_HELM)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/fetch_helm.py failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


@dataclass(frozen=True)
class Helm:
    binary: Path

    def run(self, *args: str, cwd: Path = REPO) -> str:
        done = subprocess.run(  # noqa: S603
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            timeout=HELM_TIMEOUT_SECONDS,
            check=False,
            cwd=cwd,
            env={"HOME": "/nonexistent", "PATH": "/usr/bin:/bin", "KUBECONFIG": "/nonexistent"},
        )
        if done.returncode != 0:
            raise HelmError(_without_symlink_notes(done.stderr) or done.stdout)
        return done.stdout

    def template(
        self,
        *,
        values: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        include_crds: bool = False,
        chart: Path = CHART,
        show_only: str | None = None,
    ) -> list[Manifest]:
        args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
        for file in values:
            args += ["--values", str(file)]
        for item in set_values:
            args += ["--set", item]
        if include_crds:
            args.append("--include-crds")
        if show_only:
            args += ["--show-only", show_only]
        return [doc for doc in yaml.safe_load_all(self.run(*args)) if doc]

    def lint(self, *, values: Sequence[Path] = ()) -> str:
        args = ["lint", "--strict", str(CHART)]
        for file in values:
            args += ["--values", str(file)]
        return self.run(*args)

    def notes(self, tmp: Path, *, values: Sequence[Path] = (), set_values: Sequence[str] = ()) -> str:
        """NOTES.txt as `helm install` prints it (rendered in a copy of the chart, as a ConfigMap)."""
        copy = tmp / "indextts"
        shutil.copytree(CHART, copy, symlinks=False)
        notes = (copy / "templates" / "NOTES.txt").read_text()
        (copy / "templates" / "_notes_under_test.tpl").write_text(
            '{{- define "test.notes" -}}\n' + notes + "\n{{- end -}}\n"
        )
        (copy / "templates" / "notes-under-test.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
            'data:\n  notes: {{ include "test.notes" . | quote }}\n'
        )
        docs = self.template(
            values=values,
            set_values=set_values,
            chart=copy,
            show_only="templates/notes-under-test.yaml",
        )
        text: str = docs[0]["data"]["notes"]
        return text


def _without_symlink_notes(stderr: str) -> str:
    """helm reports each followed symlink (the CRD's) on stderr; keep the real errors."""
    return "\n".join(line for line in stderr.splitlines() if "found symbolic link in path" not in line)


# --- reading rendered manifests --------------------------------------------------------------------


def by_kind(docs: Sequence[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: Sequence[Manifest], kind: str, name: str) -> Manifest:
    found = [doc for doc in by_kind(docs, kind) if doc["metadata"]["name"] == name]
    if len(found) != 1:
        names = [doc["metadata"]["name"] for doc in by_kind(docs, kind)]
        raise AssertionError(f"expected one {kind} named {name}, found {names}")
    return found[0]


def component(name: str) -> str:
    """A component's resource name for the test release."""
    return f"{RELEASE}-indextts-{name}"


WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})


def pod_specs(docs: Sequence[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(workload name, pod spec) of every workload and bare Pod (helm test hooks)."""
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]


def containers(pod: Manifest) -> list[Manifest]:
    found: list[Manifest] = [*pod.get("initContainers", []), *pod["containers"]]
    return found


def env_of(container: Manifest) -> dict[str, Any]:
    """name -> value (or valueFrom) of a container's environment."""
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}
