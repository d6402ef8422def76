"""`helm uninstall` leaves nothing behind but the CRD. Runs last (file order); reinstalls afterwards."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from e2e.cluster import REPO, Cluster, eventually

# Kept on purpose: the CRD (Helm never deletes CRDs: the users' workflows would go with it), and
# Events, which the API server expires by itself.
KEPT_KINDS = {"events", "events.events.k8s.io"}


def leftovers(cluster: Cluster) -> list[str]:
    """Every object labelled with the release, in its namespace or cluster-wide, but the kept kinds."""
    selector = f"app.kubernetes.io/instance={cluster.release.name}"
    found: list[str] = []
    for namespaced in (True, False):
        kinds = cluster.kubectl(
            "api-resources", "--verbs=list", f"--namespaced={str(namespaced).lower()}", "-o", "name",
            namespaced=False,
        ).split()  # fmt: skip
        wanted = [kind for kind in kinds if kind not in KEPT_KINDS]
        output = cluster.kubectl(
            "get", ",".join(wanted), "-l", selector, "-o", "json", "--ignore-not-found", namespaced=namespaced
        )
        listing = json.loads(output or '{"items": []}')
        found += [f"{item['kind']}/{item['metadata']['name']}" for item in listing["items"]]
    return found


def test_helm_uninstall_leaves_only_the_crd(cluster: Cluster) -> None:
    release = cluster.release
    values = cluster.helm("get", "values", release.name, "-o", "yaml")
    assert leftovers(cluster), "the release's objects are found by their label"
    # Workflows first, while the operator runs and can remove its finalizers (docs/helm.md, "Uninstall").
    cluster.kubectl("delete", "ttsworkflows", "--all", "--wait=true", "--timeout=120s")
    try:
        cluster.helm("uninstall", release.name, "--wait", "--timeout", "5m")
        remaining = eventually(
            lambda: leftovers(cluster) == [] or None,
            timeout=120,
            interval=3,
            what="the release's objects to go",
        )
        assert remaining
        assert cluster.kubectl("get", "ttsworkflows", "-o", "name") == ""
        pvcs = json.loads(cluster.kubectl("get", "pvc", "-o", "json"))["items"]
        assert [pvc["metadata"]["name"] for pvc in pvcs] == [], "no volume claim outlives the release"
        crd = cluster.kubectl("get", "crd", "ttsworkflows.tts.indextts.io", "-o", "name", namespaced=False)
        assert crd.strip() == "customresourcedefinition.apiextensions.k8s.io/ttsworkflows.tts.indextts.io"
    finally:
        with tempfile.TemporaryDirectory() as scratch:
            saved = Path(scratch) / "values.yaml"
            saved.write_text(values)
            cluster.helm(
                "upgrade", "--install", release.name, str(REPO / "charts" / "indextts"),
                "--values", str(saved), "--wait", "--timeout", "5m",
            )  # fmt: skip
