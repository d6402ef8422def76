"""``indextts-k8s operator`` as a process: against kmock and a real nats-server, metrics served."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import nats
import pytest
import yaml

from nats_support.embedded_nats import free_port
from tests.operator.cluster import Cluster, emulated_api_server, eventually, phase_is
from tests.operator.scenarios import speech_spec
from tts_api.nats_names import JOBS_STREAM, workers_consumer
from tts_api.speech_models import KNOWN_MODELS


def test_help_lists_the_scope_and_leader_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tts_cli.main", "operator", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for option in ("--namespace", "--all-namespaces", "--standalone", "--log-format"):
        assert option in result.stdout


def kubeconfig(path: Path, server: str) -> Path:
    """A kubeconfig naming ``server``, as kind or a cloud provider would write one."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("connection", ["kubeconfig", "api-url"])
async def test_the_operator_process_dispatches_and_serves_metrics(
    connection: str, nats_url: str, tmp_path: Path
) -> None:
    metrics_port = free_port()
    with emulated_api_server() as url:
        cluster = Cluster(url, "default", emulated=True)
        how = (
            {"KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", url))}
            if connection == "kubeconfig"
            else {"TTS_OPERATOR_KUBE_API_URL": url}
        )
        env = {
            **os.environ,
            **how,
            "TTS_OPERATOR_NATS_URL": nats_url,
            "TTS_OPERATOR_METRICS_PORT": str(metrics_port),
            "TTS_OPERATOR_LEADER_ELECTION": "true",
            "TTS_OPERATOR_LEASE_DURATION_SECONDS": "3",
            "TTS_OPERATOR_LEASE_RENEW_SECONDS": "1",
            "POD_NAME": "operator-test-0",
        }
        process = subprocess.Popen(  # noqa: ASYNC220 (a child process for the length of the test)
            [sys.executable, "-m", "tts_cli.main", "operator", "--all-namespaces"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            await cluster.create("from-cli", speech_spec())
            try:
                body = await cluster.wait_for("from-cli", phase_is("Queued"), within=30)
            except AssertionError as exc:
                process.kill()
                raise AssertionError(f"the operator's output: {process.communicate()[0][-5000:]}") from exc
            assert body is not None
            assert body["status"]["stages"][0]["attempt"] == 1
            text = ""

            async def scraped() -> bool:
                nonlocal text
                url = f"http://127.0.0.1:{metrics_port}/metrics"
                page = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
                text = page.decode()
                # The status is written first, then the job published ("record, then act").
                return (
                    'tts_operator_dispatches_total{result="new",task="indextts.generate_speech"} 1.0' in text
                )

            await eventually(scraped, within=10, what="the dispatch counted in /metrics")
            assert "tts_operator_leader 1.0" in text
            # Each model's consumer is there before any worker of it: an autoscaler reads its jobs there.
            client = await nats.connect(nats_url)
            try:
                for model in KNOWN_MODELS:
                    info = await client.jetstream().consumer_info(JOBS_STREAM, workers_consumer(model))
                    assert info.num_pending == (1 if model == "indextts-2" else 0), model
            finally:
                await client.close()
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                output, _ = await asyncio.to_thread(process.communicate, timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
        assert process.returncode == 0, output
        assert "leading: Lease default/indextts-operator held by operator-test-0" in output


def start_operator(api_url: str, nats_url: str, pod: str, health_port: int) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TTS_OPERATOR_KUBE_API_URL": api_url,
        "TTS_OPERATOR_NATS_URL": nats_url,
        "TTS_OPERATOR_METRICS_PORT": "0",
        "TTS_OPERATOR_LIVENESS_ENDPOINT": f"http://127.0.0.1:{health_port}/healthz",
        "TTS_OPERATOR_LEASE_DURATION_SECONDS": "3",
        "TTS_OPERATOR_LEASE_RENEW_SECONDS": "1",
        "POD_NAME": pod,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tts_cli.main", "operator", "-A"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


async def stop_operator(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = await asyncio.to_thread(process.communicate, timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def alive(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def test_a_standby_replica_waits_then_takes_over(nats_url: str) -> None:
    """Two replicas: one dispatches; the other stands by (alive, no watches) until the first stops."""
    with emulated_api_server() as url:
        cluster = Cluster(url, "default", emulated=True)
        first_port, second_port = free_port(), free_port()
        first = start_operator(url, nats_url, "replica-a", first_port)
        second: subprocess.Popen[str] | None = None
        try:
            await cluster.create("before", speech_spec())
            await cluster.wait_for("before", phase_is("Queued"), within=30)
            second = start_operator(url, nats_url, "replica-b", second_port)
            await eventually(
                lambda: alive(second_port), within=20, what="the standby answers its liveness probe"
            )
            await asyncio.sleep(3.5)  # longer than the lease, renewed meanwhile: the standby keeps waiting
            assert second.poll() is None
            first_output = await stop_operator(first)
            assert first.returncode == 0, first_output
            # The standby takes the released Lease and reconciles what comes next.
            await cluster.create("after", speech_spec())
            await cluster.wait_for("after", phase_is("Queued"), within=30)
        finally:
            if first.poll() is None:
                await stop_operator(first)
            second_output = await stop_operator(second) if second is not None else ""
        assert "leading: Lease default/indextts-operator held by replica-b" in second_output
        assert "waiting to lead" in second_output


def test_lease_settings_that_make_no_valid_election_stop_the_operator_saying_why() -> None:
    env = {
        **os.environ,
        "TTS_OPERATOR_KUBE_API_URL": "http://127.0.0.1:9",  # never called
        "TTS_OPERATOR_METRICS_PORT": "0",
        "TTS_OPERATOR_LEASE_RENEW_SECONDS": "0.5",
    }
    done = subprocess.run(
        [sys.executable, "-m", "tts_cli.main", "operator", "-A"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "TTS_OPERATOR_LEASE_RENEW_SECONDS=0.5" in done.stdout + done.stderr
    assert "the retry period (0.5 s) must be at least 1 s" in done.stdout + done.stderr
