"""Measuring on a noisy 2-core machine: what a timed block used, and waiting for the machine to be quiet.

On this kind of machine one busy neighbour makes torch's two OpenMP threads wait on each other and a
run 5-15x slower; benchmarks record the other processes' CPU next to every timing.
"""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path

__all__ = ["Timed", "wait_for_quiet"]


def _busy_cpu_seconds() -> float:
    """CPU seconds used by the whole machine so far (all processes), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: write 5 to /proc/self/clear_refs); False where not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


class Timed:
    """Times a block and records what the machine did meanwhile: own CPU, other processes' CPU, peak RSS."""

    def __init__(self, device) -> None:
        self.device = device

    def __enter__(self) -> Timed:
        import torch

        self.reset = _reset_peak_rss()
        self.rss_at_start_mib = _current_rss_mib()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        self._busy, self._own, self._t0 = _busy_cpu_seconds(), _own_cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._t0
        own = _own_cpu_seconds() - self._own
        self.own_cores = own / self.seconds
        self.other_cores = max(0.0, (_busy_cpu_seconds() - self._busy - own) / self.seconds)
        self.phase_peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 if self.reset else None
        self.cuda_peak_mib = torch.cuda.max_memory_allocated() / 2**20 if self.device.type == "cuda" else None

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "own_cores": self.own_cores, "other_cores": self.other_cores,
                "rss_at_start_mib": self.rss_at_start_mib, "phase_peak_rss_mib": self.phase_peak_rss_mib,
                "cuda_peak_mib": self.cuda_peak_mib}


def wait_for_quiet(max_wait: float, threshold: float = 0.15, window: float = 3.0) -> dict:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores over ``window`` s.

    Another engineer's tests may share this 2-core machine; a contended run can be 3x slower.
    """
    t0 = time.perf_counter()
    while True:
        busy, own = _busy_cpu_seconds(), _own_cpu_seconds()
        time.sleep(window)
        used = (_busy_cpu_seconds() - busy - (_own_cpu_seconds() - own)) / window
        waited = time.perf_counter() - t0
        if used < threshold or waited >= max_wait:
            return {"quiet": used < threshold, "waited_s": waited, "busy_cores_before": used}
