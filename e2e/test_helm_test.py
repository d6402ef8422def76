"""`helm test`: the chart's own smoke test (a health_check workflow through the gateway) passes."""

from __future__ import annotations

from e2e.cluster import Cluster


def test_helm_test_passes(cluster: Cluster) -> None:
    output = cluster.helm("test", cluster.release.name, "--timeout", "5m", "--logs")
    assert "Phase:          Succeeded" in output or "Phase: Succeeded" in output, output
    assert '"status": "healthy"' in output
