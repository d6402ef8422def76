"""The chart's tests: helm from the project's own script, renders cached per values set."""

from __future__ import annotations

import pytest

from kube_testbed.helm import Helm, fetch_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(fetch_helm())
