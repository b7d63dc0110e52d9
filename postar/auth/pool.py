"""The bounded pool of threads that run argon2id checks.

Each argon2id verification holds its memory cost (64 MiB with the RFC 9106
defaults, ``PasswordHasher().memory_cost`` KiB) for the length of the check.
``asyncio.to_thread`` would run as many at once as its default executor has
threads (min(32, cores + 4)), so a burst of logins multiplied that memory. Like
Dovecot's auth worker processes (``auth_worker_max_count``), a fixed number of
workers run checks and the rest wait their turn in one queue, first come first
served: a burst costs time, not memory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, TypeVar

log = logging.getLogger("postar.auth")
T = TypeVar("T")
MiB = 1024 * 1024


def pool_size(configured: int, cores: int, available: int | None, memory_cost: int) -> int:
    """How many checks may run at once: ``configured`` when set (> 0); else one per
    core, but no more than half the available memory holds (``memory_cost`` bytes
    each), so the checks never take more than half of what is free. At least one."""
    if configured > 0:
        return configured
    size = max(1, cores)
    if available is not None:
        size = min(size, available // (2 * memory_cost))
    return max(1, size)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def available_memory() -> int | None:
    """Bytes this process can still take: MemAvailable, or less under a cgroup v2 limit."""
    amounts = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                amounts.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            amounts.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, ValueError):
        pass
    return max(0, min(amounts)) if amounts else None


class CheckPool:
    """Runs blocking password checks on ``size`` threads; more calls queue."""

    def __init__(self, size: int):
        self.size = size
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="argon2id")

    @classmethod
    def sized_for(cls, configured: int, memory_cost: int) -> CheckPool:
        cores, available = usable_cores(), available_memory()
        size = pool_size(configured, cores, available, memory_cost)
        free = "unknown" if available is None else f"{available // MiB} MiB"
        log.info("password checks: %d at a time (%s; %d cores, %s memory available, %d MiB each)",
                 size, "configured" if configured > 0 else "automatic", cores, free, memory_cost // MiB)
        return cls(size)

    async def run(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
