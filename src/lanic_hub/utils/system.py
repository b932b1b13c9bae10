"""Facts about the machine a stage runs on."""

from __future__ import annotations

import os
import sys


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def cap_workers(requested: int, what: str) -> int:
    """``requested`` worker processes, capped at the available cores (more only compete for them,
    and torch's DataLoader warns); says so on stderr when it caps."""
    cores = available_cores()
    if requested > cores:
        print(
            f"{what}: {requested} workers asked for, {cores} used (the cores this machine has)",
            file=sys.stderr,
        )
        return cores
    return max(0, requested)
