"""The worker process's own memory, as the kernel counts it (resident set size)."""

from __future__ import annotations

import os
import resource


def resident_memory_bytes() -> int:
    """Bytes of the process resident in memory now (Linux ``/proc``); the peak elsewhere."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
