"""What the routes read from ``app.state``, each as a FastAPI dependency: the settings, the validation
policy, and the parts the app's lifespan opened (the workflow backend, the worker directory and the
voice library)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, FastAPI, Request

from gateway.backend import WorkflowBackend
from gateway.settings import GatewaySettings
from gateway.worker_directory import WorkerDirectory
from tts_api.policy import ValidationPolicy
from voice_library.library import VoiceLibrary

Part = TypeVar("Part")


@dataclass
class OpenedParts:
    """What the app's lifespan opened: set while it serves, absent before and after."""

    workflows: WorkflowBackend | None = None
    workers: WorkerDirectory | None = None
    voices: VoiceLibrary | None = None

    @staticmethod
    def need(part: Part | None) -> Part:
        if part is None:
            raise RuntimeError("the gateway is not serving: its backends are not open")
        return part

    def backend(self) -> WorkflowBackend:
        return self.need(self.workflows)

    def directory(self) -> WorkerDirectory:
        return self.need(self.workers)

    def library(self) -> VoiceLibrary:
        return self.need(self.voices)


def install_state(app: FastAPI, settings: GatewaySettings, policy: ValidationPolicy) -> OpenedParts:
    """Put the settings, the policy and (empty until the lifespan opens them) the parts on ``app.state``."""
    app.state.settings = settings
    app.state.policy = policy
    app.state.opened = OpenedParts()
    return opened_parts_of(app)


def settings_of(app: FastAPI) -> GatewaySettings:
    settings: GatewaySettings = app.state.settings
    return settings


def opened_parts_of(app: FastAPI) -> OpenedParts:
    opened: OpenedParts = app.state.opened
    return opened


async def gateway_settings(request: Request) -> GatewaySettings:
    return settings_of(request.app)


async def validation_policy(request: Request) -> ValidationPolicy:
    policy: ValidationPolicy = request.app.state.policy
    return policy


async def opened_parts(request: Request) -> OpenedParts:
    """The parts themselves are asked for where a route needs them (``backend()``, ``directory()``),
    so a route that answers before it needs one answers the same whether or not they are open."""
    return opened_parts_of(request.app)


Settings = Annotated[GatewaySettings, Depends(gateway_settings)]
Policy = Annotated[ValidationPolicy, Depends(validation_policy)]
Opened = Annotated[OpenedParts, Depends(opened_parts)]
