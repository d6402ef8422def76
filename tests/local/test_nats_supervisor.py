"""What local mode's supervisor decides from what it sees of its nats-server, and that the server's
own output reaches the log (a real nats-server that cannot listen)."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from local_mode.nats_supervisor import MIN_FREE_BYTES, Action, ServerView, decide, problem
from nats_support.embedded_nats import EmbeddedNats, NatsServerError, read_line

MIB = 2**20
SERVING = ServerView(
    running=True,
    exit_code=None,
    store_fault=None,
    held=False,
    free_bytes=10 * MIN_FREE_BYTES,
    fullest="/d/nats",
)


def test_a_serving_server_is_left_alone() -> None:
    assert decide(SERVING) is Action.NONE
    assert problem(SERVING) is None


def test_a_dead_server_is_restarted_and_requests_are_told_to_retry() -> None:
    dead = replace(SERVING, running=False, exit_code=-9)
    assert decide(dead) is Action.RESTART
    assert "send the request again" in (problem(dead) or "")


def test_a_nearly_full_disk_holds_the_server_until_twice_the_minimum_is_free() -> None:
    short = replace(SERVING, free_bytes=MIN_FREE_BYTES - 1)
    assert decide(short) is Action.HOLD
    message = problem(short) or ""
    assert "/d/nats is full" in message
    assert "free space there" in message
    held = replace(short, running=False, held=True, free_bytes=MIN_FREE_BYTES + MIB)
    assert decide(held) is Action.HOLD  # not yet: no stop and start at the edge
    assert decide(replace(held, free_bytes=2 * MIN_FREE_BYTES)) is Action.RESTART
    assert "restarting" in (problem(replace(held, free_bytes=2 * MIN_FREE_BYTES)) or "")


def test_a_failed_store_write_restarts_the_server_once_there_is_space() -> None:
    fault = "Filestore [KV_tts_workflows] Critical write error: no space left on device"
    faulted = replace(SERVING, store_fault=fault, free_bytes=0)
    assert decide(faulted) is Action.HOLD
    assert fault in (problem(faulted) or "")
    assert decide(replace(faulted, free_bytes=10 * MIN_FREE_BYTES)) is Action.RESTART


def test_nats_server_lines_keep_their_level_and_store_faults_are_recognised() -> None:
    error = read_line(
        "[81] 2026/12/02 10:14:37.466689 [ERR] Filestore [KV_b1] Critical write error: write "
        "/d/nats/jetstream/$G/streams/KV_b1/msgs/1.blk: no space left on device\n"
    )
    assert (error.level, error.store_fault) == (logging.ERROR, True)
    assert error.message.startswith("Filestore [KV_b1] Critical write error")
    warning = read_line("[81] 2026/12/02 10:14:37.466689 [WRN] Filestore [KV_b1] TTL state is outdated")
    assert (warning.level, warning.store_fault) == (logging.WARNING, False)
    assert read_line("[81] 2026/12/02 10:14:37.466689 [INF]").level == logging.DEBUG
    assert read_line("panic: runtime error").level == logging.WARNING


def test_a_nats_server_that_cannot_start_says_why_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        server = EmbeddedNats(tmp_path / "nats", port=taken.getsockname()[1])
        with (
            caplog.at_level(logging.WARNING, logger="nats_support.embedded_nats"),
            pytest.raises(NatsServerError, match="address already in use"),
        ):
            server.start()
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and "nats-server:" in r.getMessage()]
    assert any("address already in use" in record.getMessage() for record in logged), caplog.text
