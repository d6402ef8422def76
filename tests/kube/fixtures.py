"""Fixtures of a real Kubernetes API server for the session (a test that needs one fails when no
binaries can be found: `make test` builds them), the TTSWorkflow CRD on it, and the chart's RBAC
applied to it as rendered. Loaded for every test directory by tests/conftest.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from kube_testbed.apiserver import (
    REPO,
    Assets,
    AssetsNotFoundError,
    RealApiServer,
    User,
    find_assets,
    real_api_server,
)
from kube_testbed.stack import apply_chart_rbac

CRD_FILE = REPO / "crds" / "ttsworkflows.tts.indextts.io.yaml"
VOICE_CRD_FILE = REPO / "crds" / "ttsvoices.tts.indextts.io.yaml"
# A static-token user that no RBAC rule names: every request it makes beyond discovery is forbidden.
NOBODY = "nobody"
SESSION_USERS = (User(NOBODY),)


@pytest.fixture(scope="session")
def kube_assets() -> Assets:
    """The etcd and kube-apiserver binaries (``$KUBEBUILDER_ASSETS``, else the built cache)."""
    try:
        return find_assets()
    except AssetsNotFoundError as exc:
        pytest.fail(f"no real Kubernetes API server: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def kube_api(kube_assets: Assets) -> Iterator[RealApiServer]:
    """etcd and kube-apiserver for the whole session, ``admin`` and ``nobody`` as token users."""
    with real_api_server(SESSION_USERS, assets=kube_assets) as server:
        yield server


@pytest.fixture(scope="session")
def kube_crd(kube_api: RealApiServer) -> dict[str, Any]:
    """The project's CRDs (TTSVoice, then TTSWorkflow), installed and Established; returns the
    TTSWorkflow one as the server answers it."""
    kube_api.install_crd(yaml.safe_load(VOICE_CRD_FILE.read_text()))
    return kube_api.install_crd(yaml.safe_load(CRD_FILE.read_text()))


@pytest.fixture
def kube_namespace(kube_api: RealApiServer) -> str:
    """A fresh namespace for one test (never deleted: no namespace controller runs to finish that)."""
    name = f"t-{secrets.token_hex(4)}"
    kube_api.ensure_namespace(name)
    return name


@pytest.fixture(scope="session")
def chart_rbac(kube_api: RealApiServer, kube_crd: dict[str, Any]) -> list[dict[str, Any]]:
    """The chart's ServiceAccounts, Roles, ClusterRoles and bindings (default values), created on the
    server unchanged in the release namespace; tokens of those ServiceAccounts act as the components."""
    return apply_chart_rbac(kube_api)
