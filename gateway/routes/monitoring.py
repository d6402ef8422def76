"""Monitoring: the running tasks' heartbeats, the GPU lock's health, and the statistics."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.app_state import Opened, Policy
from gateway.monitoring import (
    GpuLockHealthResponse,
    HeartbeatAllResponse,
    StatisticsResponse,
    gpu_lock_health,
    heartbeat_all,
    statistics,
)

router = APIRouter()


@router.get("/api/v1/monitoring/heartbeat/all", response_model=HeartbeatAllResponse)
async def heartbeats(opened: Opened) -> HeartbeatAllResponse:
    return heartbeat_all(await opened.backend().tally())


@router.get("/api/v1/monitoring/gpu-lock/health", response_model=GpuLockHealthResponse)
async def gpu_lock(opened: Opened, policy: Policy) -> GpuLockHealthResponse:
    directory = opened.directory()
    return gpu_lock_health(
        await directory.entries(),
        await opened.backend().tally(),
        quota=await directory.gpu_quota(),
        queued=await directory.queued(policy.models),
    )


@router.get("/api/v1/monitoring/statistics", response_model=StatisticsResponse)
async def stats(opened: Opened, policy: Policy) -> StatisticsResponse:
    directory = opened.directory()
    return statistics(
        await directory.entries(), await opened.backend().tally(), await directory.queued(policy.models)
    )
