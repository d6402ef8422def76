"""The whole stack on a real API server, as the chart installs it (:mod:`kube_testbed.stack`): the CRD
from ``crds/``, the chart's RBAC and Lease, the operator, the gateway and two inference workers, each
authenticated by its ServiceAccount's token.

One stack serves this directory (``stack``, stopped before the other tests of the real server
run); a test that kills a component starts a new one in its place before it ends
(``Stack.restart_operator``, ``Stack.slow_workers``). Every test fails when a component logged a
403 while it ran (``_no_403_in_any_log``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kube_testbed.apiserver import RealApiServer
from kube_testbed.components import forbidden_lines
from kube_testbed.stack import Stack, running_stack


@pytest.fixture(scope="package")
def stack(
    kube_api: RealApiServer, kube_crd: dict[str, Any], chart_rbac: list[dict[str, Any]]
) -> Iterator[Stack]:
    with running_stack(kube_api) as running:
        yield running


@pytest.fixture(autouse=True)
def _no_403_in_any_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the test when any component of the stack logged a 403 from the API server meanwhile."""
    if "stack" not in request.fixturenames:
        yield
        return
    running: Stack = request.getfixturevalue("stack")
    before = {id(part): len(forbidden_lines(part.log())) for part in running.components()}
    yield
    found = {
        part.name: lines[before.get(id(part), 0) :]
        for part in running.components()
        if (lines := forbidden_lines(part.log()))
    }
    found = {name: lines for name, lines in found.items() if lines}
    shown = {
        name: [line[:300] for line in lines[:3]] + [f"({len(lines)} in all)"] for name, lines in found.items()
    }
    assert not found, f"403s under the chart's RBAC: {shown}"
