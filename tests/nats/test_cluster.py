"""The streams' replicas, on real nats-servers: one server, and a cluster of three with routes, as
the chart runs them (``nats.replicas: 3``); one of the three killed, and the work goes on."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nats
import pytest
from nats.aio.client import Client

from nats_support.embedded_nats import free_port, nats_server_binary
from nats_support.jetstream import JetStreamSetupError, ensure_jetstream, subscribe_workers
from tts_api.constants import TaskName
from tts_api.nats_names import EVENTS_STREAM, JOBS_STREAM, WORKERS_BUCKET, job_subject

T = TypeVar("T")
# What a request meets while the streams elect new leaders.
RETRIED: tuple[type[Exception], ...] = (
    nats.errors.TimeoutError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)

STREAMS = (JOBS_STREAM, EVENTS_STREAM, f"KV_{WORKERS_BUCKET}")


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@contextlib.contextmanager
def three_servers(tmp_path: Path) -> Iterator[list[Node]]:
    """Three nats-servers with JetStream, routed to each other (the chart's cluster block); each
    keeps its store in ``tmp_path/<name>``."""
    nodes = [Node(f"n{i}", free_port(), free_port()) for i in range(3)]
    routes = ",".join(f"nats://127.0.0.1:{node.cluster_port}" for node in nodes)
    try:
        for node in nodes:
            config = tmp_path / f"{node.name}.conf"
            config.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.port}\n"
                f"jetstream {{ store_dir: {tmp_path / node.name} }}\n"
                f"cluster {{ name: tts, listen: 127.0.0.1:{node.cluster_port}, routes: [{routes}] }}\n"
            )
            log = (tmp_path / f"{node.name}.log").open("wb")
            node.process = subprocess.Popen(  # noqa: S603 (the suite's own nats-server)
                [nats_server_binary(), "--config", str(config)], stdout=log, stderr=log
            )
        yield nodes
    finally:
        for node in nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[list[Node]]:
    with three_servers(tmp_path) as nodes:
        yield nodes


async def connected(*urls: str) -> Client:
    """A client of the servers, once one of them listens (they may be starting)."""
    for _ in range(100):
        try:
            return await nats.connect(list(urls), max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        except (ConnectionRefusedError, nats.errors.NoServersError):
            await asyncio.sleep(0.1)
    raise AssertionError(f"no server of {urls} answered")


async def until_jetstream_answers(client: Client) -> None:
    """A fresh cluster elects its JetStream meta leader first: until then stream calls fail."""
    js = client.jetstream()
    for _ in range(200):
        with contextlib.suppress(Exception):
            await js.account_info()
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the cluster's JetStream never answered")


@pytest.fixture
async def client(cluster: list[Node]) -> AsyncIterator[Client]:
    connection = await connected(*(node.url for node in cluster))
    await until_jetstream_answers(connection)
    yield connection
    await connection.close()


async def test_on_a_single_server_the_streams_keep_one_replica_and_three_are_refused_saying_why(
    nats_url: str,
) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    try:
        await ensure_jetstream(js)
        for stream in STREAMS:
            assert (await js.stream_info(stream)).config.num_replicas == 1
        with pytest.raises(JetStreamSetupError, match="lower TTS_OPERATOR_NATS_REPLICAS"):
            await ensure_jetstream(js, replicas=3)
        await ensure_jetstream(js, replicas=1)  # the operator's setting met: nothing to change
    finally:
        await client.close()


async def test_the_operators_count_is_kept_by_the_others_and_scales_up_what_they_created(
    client: Client,
) -> None:
    js = client.jetstream()
    await ensure_jetstream(js)  # a worker that starts first: one replica
    assert {(await js.stream_info(s)).config.num_replicas for s in STREAMS} == {1}
    await ensure_jetstream(js, replicas=3)  # the operator, with the chart's nats.replicas
    assert {(await js.stream_info(s)).config.num_replicas for s in STREAMS} == {3}
    await ensure_jetstream(js)  # a gateway or worker starting later keeps the operator's count
    assert {(await js.stream_info(s)).config.num_replicas for s in STREAMS} == {3}


async def test_with_three_replicas_the_work_goes_on_when_a_server_is_killed(
    cluster: list[Node], client: Client
) -> None:
    js = client.jetstream()
    bucket = await ensure_jetstream(js, replicas=3)
    for n in range(5):
        await js.publish(
            job_subject("synthetic", TaskName.GENERATE_SPEECH),
            f"before {n}".encode(),
            headers={"Nats-Msg-Id": f"b{n}"},
        )
    written = await bucket.put("worker-a", b"busy")  # the bucket's sequence number of this write
    info = await js.stream_info(JOBS_STREAM)
    assert info.cluster is not None
    assert len(info.cluster.replicas or []) == 2  # the leader and two followers

    leader = next(node for node in cluster if node.name == info.cluster.leader)
    assert leader.process is not None
    leader.process.kill()  # the jobs stream's leader, the worst one to lose
    leader.process.wait(timeout=10)

    survivors = [node for node in cluster if node is not leader]
    other = await connected(*(node.url for node in survivors))
    try:
        ojs = other.jetstream()
        for n in range(5):  # a new leader is elected among the two left: publishing goes on
            await while_electing(
                functools.partial(
                    ojs.publish,
                    job_subject("synthetic", TaskName.GENERATE_SPEECH),
                    f"after {n}".encode(),
                    headers={"Nats-Msg-Id": f"a{n}"},
                )
            )
        workers = await while_electing(lambda: subscribe_workers(ojs, "synthetic", ack_wait=5))
        taken: set[bytes] = set()
        deadline = asyncio.get_running_loop().time() + 60
        # Every job is taken, and every ack lands (one lost to the election is redelivered, taken again).
        while len(taken) < 10 or (await while_electing(lambda: ojs.stream_info(JOBS_STREAM))).state.messages:
            assert asyncio.get_running_loop().time() < deadline, f"taken {sorted(taken)}"
            with contextlib.suppress(nats.errors.TimeoutError):
                for message in await workers.fetch(10, timeout=0.5):
                    taken.add(message.data)
                    with contextlib.suppress(nats.errors.TimeoutError):
                        await message.ack_sync()
        assert taken == {f"before {n}".encode() for n in range(5)} | {f"after {n}".encode() for n in range(5)}
        survivors_bucket = await while_electing(lambda: ojs.key_value(WORKERS_BUCKET))
        # Every acknowledged write is on the bucket's new leader. The entry itself may have aged
        # out by now (heartbeats live WORKER_ENTRY_TTL_SECONDS), its sequence number stays.
        kept = await while_electing(lambda: ojs.stream_info(f"KV_{WORKERS_BUCKET}"))
        assert kept.state.last_seq >= written
        # The bucket takes writes again, and reads them back through its leader.
        later = await while_electing(lambda: survivors_bucket.put("worker-b", b"idle"))
        assert later > written
        found = await while_electing(
            lambda: ojs.get_last_msg(f"KV_{WORKERS_BUCKET}", f"$KV.{WORKERS_BUCKET}.worker-b"),
            also=(nats.js.errors.NotFoundError,),
        )
        assert (found.seq, found.data) == (later, b"idle")
    finally:
        await other.close()


async def while_electing(
    call: Callable[[], Awaitable[T]], seconds: float = 30, also: tuple[type[Exception], ...] = ()
) -> T:
    """``call()``, tried again while the streams elect new leaders (requests then time out or are
    refused as unavailable); a publish tried again keeps its ``Nats-Msg-Id``, so it lands once."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await call()
        except RETRIED + also:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
