"""The REST gateway: the workflow API (``/v1/workflows``), monitoring and operations, over a workflow
backend. :func:`create_app` assembles the app from its parts:

- ``gateway.routes``: the routes by concern (the workflow API, monitoring, operations);
- ``gateway.app_state``: the settings, the policy and the opened backends, as dependencies;
- ``gateway.middleware``: the API key check and the request counters;
- ``gateway.exception_handlers``: errors as the workflow API's error body.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI

from gateway.app_state import install_state, opened_parts_of, settings_of
from gateway.backend import BackendFactory
from gateway.exception_handlers import add_exception_handlers
from gateway.middleware import add_middleware
from gateway.openapi import EVERY_ROUTE_ERRORS, install_openapi
from gateway.routes import monitoring, openai, operations, playground, voices, workflows
from gateway.serving_log import log
from gateway.settings import GatewaySettings
from gateway.voice_presets import PresetsFile
from gateway.worker_directory import WorkerDirectory
from tts_api.nats_names import VOICES_BUCKET
from tts_api.policy import ValidationPolicy
from voice_library.library import VoiceLibrary
from voice_library.store import BucketVoices, VoiceStore

WorkerDirectoryFactory = Callable[[], contextlib.AbstractAsyncContextManager[WorkerDirectory]]
# The store of uploaded voices, opened once the worker directory (and its NATS connection) is.
VoiceStoreFactory = Callable[[GatewaySettings, WorkerDirectory], Awaitable[VoiceStore]]
Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


async def bucket_voice_store(settings: GatewaySettings, directory: WorkerDirectory) -> VoiceStore:
    """The namespace's voices in the ``tts_voices`` bucket, on the worker directory's NATS connection
    (local mode's store; on a cluster the voices are TTSVoice objects)."""
    return BucketVoices(await directory.client.jetstream().key_value(VOICES_BUCKET), settings.namespace)


def opening(
    open_backend: BackendFactory, open_workers: WorkerDirectoryFactory, open_voices: VoiceStoreFactory
) -> Lifespan:
    """The app's lifespan: the backend, the worker directory and the voice library open while it serves."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        opened, settings = opened_parts_of(app), settings_of(app)
        async with open_backend() as backend, open_workers() as directory:
            store = await open_voices(settings, directory)
            opened.workflows, opened.workers = backend, directory
            opened.voices = VoiceLibrary(PresetsFile(settings.presets_file), store)
            log.info("gateway ready on %s:%s", settings.host, settings.port)
            yield
            opened.workflows = opened.workers = opened.voices = None

    return lifespan


def create_app(
    settings: GatewaySettings,
    open_backend: BackendFactory,
    policy: ValidationPolicy,
    open_workers: WorkerDirectoryFactory,
    open_voices: VoiceStoreFactory = bucket_voice_store,
) -> FastAPI:
    """The gateway over the workflow backend, worker directory and voice store the factories yield for
    the app's lifetime; ``policy`` validates requests and locates audio files."""
    app = FastAPI(
        title="IndexTTS2 on Kubernetes",
        description="The IndexTTS service API (v1) over TTSWorkflow resources.",
        version="v1",
        lifespan=opening(open_backend, open_workers, open_voices),
    )
    install_state(app, settings, policy)
    add_middleware(app)
    add_exception_handlers(app)
    for routes in (workflows, monitoring):
        app.include_router(routes.router, responses=EVERY_ROUTE_ERRORS)
    app.include_router(openai.router)  # OpenAI's error body, not the workflow API's
    app.include_router(voices.router)
    app.include_router(operations.router)
    app.include_router(playground.router)
    install_openapi(app)
    return app
