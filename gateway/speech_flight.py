"""One speech request in flight: its audio relayed from NATS, its workflow followed until it finishes,
and what becomes of both when the client goes away or the synthesis fails (OpenAI's errors)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from gateway.backend import WorkflowBackend, finished
from gateway.openai_errors import OpenAIError
from gateway.openai_speech import SPEECH_FIELDS
from gateway.speech_relay import BrokenStreamError, SpeechRelay
from tts_api.constants import Phase
from tts_api.errors import ErrorCode
from tts_api.resource import TTSWorkflow
from tts_api.speech_stream import AudioChunk

log = logging.getLogger(__name__)

# After the workflow succeeded, how long the rest of its audio may take to arrive.
DRAIN_SECONDS = 5.0
# Deletions of abandoned workflows, kept until they are done (a cancelled response cannot await them).
_cleanups: set[asyncio.Task[None]] = set()


class SpeechInFlight:
    """``follow()`` once the workflow exists, ``first()``, then ``chunks()``; ``clean_up()`` at the end."""

    def __init__(
        self, audio: SpeechRelay, stack: contextlib.AsyncExitStack, backend: WorkflowBackend
    ) -> None:
        self.audio = audio
        self.stack = stack
        self.backend = backend
        self.name: str | None = None
        self._outcome: asyncio.Task[TTSWorkflow | None] | None = None
        self._first: AudioChunk | None = None

    def follow(self, seconds: float) -> None:
        """Follow the workflow until it finishes (or ``seconds`` pass)."""
        assert self.name is not None  # noqa: S101 (named by its creation)
        self._outcome = asyncio.create_task(self.backend.wait(self.name, finished, seconds))
        self.stack.callback(self._outcome.cancel)

    async def first(self) -> None:
        """Wait for the first audio; raise OpenAIError when the workflow ends without any."""
        chunk = await self._next()
        if not isinstance(chunk, AudioChunk):
            raise self._failure(chunk)
        self._first = chunk

    async def chunks(self) -> AsyncIterator[AudioChunk]:
        """The chunks up to the last; raises OpenAIError when the speech cannot be finished."""
        chunk: AudioChunk | TTSWorkflow | None = self._first
        while True:
            if isinstance(chunk, AudioChunk):
                yield chunk
                if chunk.end:
                    return
                chunk = await self._next()
                continue
            if chunk is not None and chunk.status.phase is Phase.SUCCEEDED:
                # Succeeded: the rest of its audio is on its way (or was lost).
                try:
                    chunk = await asyncio.wait_for(self._checked(), DRAIN_SECONDS)
                except TimeoutError:
                    raise OpenAIError(
                        502, f"the audio of workflow {self.name} stopped before its end", code="stream_broken"
                    ) from None
                continue
            raise self._failure(chunk)

    async def _checked(self) -> AudioChunk:
        try:
            return await self.audio.next()
        except BrokenStreamError as exc:
            raise OpenAIError(502, f"the audio stream broke: {exc}", code="stream_broken") from None

    async def _next(self) -> AudioChunk | TTSWorkflow | None:
        """The next chunk, or the workflow once it has finished (None: gone), whichever comes first."""
        outcome = self._outcome
        assert outcome is not None  # noqa: S101 (followed before any chunk is asked for)
        if not outcome.done():
            chunk = asyncio.ensure_future(self._checked())
            await asyncio.wait({chunk, outcome}, return_when=asyncio.FIRST_COMPLETED)
            if chunk.done():
                return chunk.result()
            chunk.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chunk
        return outcome.result()

    def _failure(self, workflow: TTSWorkflow | None) -> OpenAIError:
        """Why a workflow gave no (more) audio, with the status its error code has."""
        name = self.name
        if workflow is None:
            return OpenAIError(
                409, f"workflow {name} was deleted before its speech was made", code="cancelled"
            )
        error = workflow.status.error
        if workflow.status.phase.finished and error is not None:
            # A worker names the synthesis's field at fault first ("reference_audio: ..."): the request's.
            field = error.message.split(":", 1)[0].strip()
            return OpenAIError(
                error.code.http_status,
                error.message,
                param=SPEECH_FIELDS.get(field),
                code=error.code.value.lower(),
            )
        if not workflow.status.phase.finished:
            return OpenAIError(
                504,
                f"workflow {name} did not finish in time; it was cancelled",
                code=ErrorCode.TASK_TIMEOUT.value.lower(),
            )
        return OpenAIError(502, f"workflow {name} succeeded but sent no audio", code="stream_broken")

    def clean_up(self, *, abandoned: bool) -> None:
        """Close the subscription and, for speech nobody will hear, delete its workflow (its job stops)."""
        stack, backend, name = self.stack, self.backend, self.name

        async def clean_up() -> None:
            await stack.aclose()
            if not abandoned or name is None:
                return
            with contextlib.suppress(Exception):
                current = await backend.get(name)
                # A finished one stays, failures included, to be seen in the views until its time to live.
                if current is not None and not finished(current) and await backend.delete(name):
                    log.info("speech workflow %s cancelled: its client went away", name)

        task = asyncio.get_running_loop().create_task(clean_up())
        _cleanups.add(task)
        task.add_done_callback(_cleanups.discard)
