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


def reset_peak_rss() -> bool:
    """Reset this process's peak resident set (Linux: ``/proc/self/clear_refs``), so that
    :func:`peak_rss_gb` measures from here on; False where the OS does not allow it (then the peak
    is the process's since it started)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_gb() -> float:
    """The peak resident set in GiB since the last :func:`reset_peak_rss` (Linux ``VmHWM``), or
    since the process started (``ru_maxrss``) elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)
