"""What this process can see of its GPU, through torch when torch is installed."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GpuStatus:
    available: bool
    count: int
    name: str | None = None
    index: int | None = None
    memory_used: int | None = None
    memory_total: int | None = None
    memory_allocated: int | None = None  # torch's tensors on the device
    memory_reserved: int | None = None  # what torch's caching allocator holds


NO_GPU = GpuStatus(available=False, count=0)


def _torch(import_if_installed: bool) -> Any:
    if "torch" in sys.modules:
        return sys.modules["torch"]
    if import_if_installed and importlib.util.find_spec("torch") is not None:
        import torch

        return torch
    return None


def probe_gpu(index: int = 0, *, import_torch: bool = True) -> GpuStatus:
    """Count, name and memory of CUDA device ``index``; :data:`NO_GPU` without torch or CUDA.

    ``import_torch=False`` looks only when torch is already imported (a CPU engine need not pay for
    importing it).
    """
    torch = _torch(import_torch)
    if torch is None or not torch.cuda.is_available():
        return NO_GPU
    count = int(torch.cuda.device_count())
    if index >= count:
        return GpuStatus(available=True, count=count)
    free, total = torch.cuda.mem_get_info(index)
    return GpuStatus(
        available=True,
        count=count,
        index=index,
        name=str(torch.cuda.get_device_name(index)),
        memory_used=int(total - free),
        memory_total=int(total),
        memory_allocated=int(torch.cuda.memory_allocated(index)),
        memory_reserved=int(torch.cuda.memory_reserved(index)),
    )
