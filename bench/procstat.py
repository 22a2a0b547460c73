"""What the benchmarks read of other processes (Linux /proc)."""

from __future__ import annotations

import os


def process_cpu_seconds(pids: tuple[int, ...]) -> float:
    """CPU time (user + system) the processes have used (0.0 where unavailable)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")
