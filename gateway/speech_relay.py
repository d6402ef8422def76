"""Streamed speech, the gateway's side: the audio of one request, received on its own NATS subject
(subscribed before the workflow is created, so nothing is missed) and handed on in order.

A worker numbers the chunks of each attempt from 0 and marks the last. A chunk of a newer attempt
(the first one's worker died, and the job runs again) replaces the older one while nothing was passed
on yet; once audio went out, a new attempt or a gap in the numbers ends the stream as broken, since
what the client heard cannot be taken back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from tts_api.nats_names import audio_subject
from tts_api.speech_stream import AudioChunk

log = logging.getLogger(__name__)


class BrokenStreamError(Exception):
    """The audio can no longer go on in order; the message says why."""


class SpeechRelay:
    """The chunks of one stream, in order: ``await relay.next()`` until a chunk with ``end``."""

    def __init__(self, subscription: Subscription, queue: asyncio.Queue[AudioChunk]) -> None:
        self._subscription = subscription
        self._queue = queue
        self.attempt: int | None = None
        self.expected = 0
        self.passed_on = 0

    async def next(self) -> AudioChunk:
        """The next chunk of the attempt being relayed; raises :class:`BrokenStreamError`."""
        while True:
            chunk = await self._queue.get()
            if self.attempt is not None and chunk.attempt < self.attempt:
                continue  # a late chunk of an attempt already replaced
            if chunk.attempt != self.attempt:
                if self.passed_on:
                    raise BrokenStreamError(
                        f"the synthesis started again (attempt {chunk.attempt}) after its audio began"
                    )
                self.attempt, self.expected = chunk.attempt, 0
            if chunk.sequence != self.expected:
                if self.passed_on or chunk.sequence > self.expected:
                    raise BrokenStreamError(
                        f"audio chunk {self.expected} of attempt {self.attempt} was lost "
                        f"(chunk {chunk.sequence} came)"
                    )
                continue
            self.expected += 1
            self.passed_on += 1
            return chunk

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._subscription.unsubscribe()


@contextlib.asynccontextmanager
async def relay(client: Client, stream_id: str) -> AsyncIterator[SpeechRelay]:
    """Subscribed to the stream's subject while the block runs."""
    queue: asyncio.Queue[AudioChunk] = asyncio.Queue()

    async def received(message: Msg) -> None:
        try:
            queue.put_nowait(AudioChunk.read(message.headers, message.data))
        except ValueError as exc:
            log.warning("ignoring a message on %s: %s", message.subject, exc)

    subscription = await client.subscribe(audio_subject(stream_id), cb=received)
    await client.flush()  # the server has the subscription before the workflow exists
    speech = SpeechRelay(subscription, queue)
    try:
        yield speech
    finally:
        await speech.close()
