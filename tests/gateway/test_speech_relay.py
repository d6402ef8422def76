"""The gateway's side of streamed speech on a real nats-server: chunks in order, a newer attempt taking
over while nothing was passed on, and a stream that breaks once it cannot go on in order."""

from __future__ import annotations

import nats
import pytest
from nats.aio.client import Client

from gateway.speech_relay import BrokenStreamError, relay
from inference_pod.speech_sender import SpeechSender
from tts_api.nats_names import audio_subject
from tts_api.speech_stream import AudioChunk, AudioFormat, SpeechStream

STREAM = "relay-test-0123456789abcdef"


async def send(client: Client, *chunks: AudioChunk) -> None:
    for chunk in chunks:
        await client.publish(audio_subject(STREAM), chunk.data, headers=chunk.headers())
    await client.flush()


def chunk(attempt: int, sequence: int, data: bytes = b"x", *, end: bool = False) -> AudioChunk:
    return AudioChunk(attempt=attempt, sequence=sequence, data=data, end=end)


async def test_chunks_come_in_order_and_a_late_chunk_of_an_older_attempt_is_dropped(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    try:
        async with relay(client, STREAM) as speech:
            # Attempt 1 died; a chunk of it that was still on its way comes after attempt 2 began.
            await send(
                client,
                chunk(2, 0, b"a"),
                chunk(1, 1, b"late"),
                chunk(2, 1, b"b"),
                chunk(2, 2, b"c", end=True),
            )
            got = [await speech.next() for _ in range(3)]
        assert [(c.attempt, c.data, c.end) for c in got] == [
            (2, b"a", False),
            (2, b"b", False),
            (2, b"c", True),
        ]
    finally:
        await client.close()


@pytest.mark.parametrize(
    "after_first",
    [chunk(2, 0), chunk(1, 2)],
    ids=["a new attempt once audio went out", "a lost chunk"],
)
async def test_a_stream_that_cannot_go_on_in_order_breaks(nats_url: str, after_first: AudioChunk) -> None:
    client = await nats.connect(nats_url)
    try:
        async with relay(client, STREAM) as speech:
            await send(client, chunk(1, 0), after_first)
            assert (await speech.next()).sequence == 0
            with pytest.raises(BrokenStreamError):
                await speech.next()
    finally:
        await client.close()


async def test_what_a_worker_sends_is_what_the_gateway_relays(nats_url: str) -> None:
    import numpy as np

    client = await nats.connect(nats_url)
    sent: list[AudioChunk] = []
    try:
        async with relay(client, STREAM) as speech:
            sender = SpeechSender(SpeechStream(id=STREAM, format=AudioFormat.PCM), 1, sent.append)
            for _ in range(3):
                sender.audio(np.full(22_050, 1000, dtype=np.int16), 22_050)
            sender.finish()
            await send(client, *sent)
            relayed = [await speech.next() for _ in sent]
    finally:
        await client.close()
    assert [c.sequence for c in relayed] == list(range(len(sent)))
    assert relayed[-1].end
    assert not any(c.end for c in relayed[:-1])
    assert len(b"".join(c.data for c in relayed)) == pytest.approx(3 * 24_000 * 2, abs=200)
