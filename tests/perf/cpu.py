"""CPU time of the processes a benchmark drives, read from Linux's ``/proc``, to say what limits.

A sample holds the CPU seconds (user + system) of a server process and of each of its
descendants (the SQLite store's writer and its fork server), of the process taking the sample
(the load generator), and the machine's busy and idle time. Two samples around a measured
phase give each one's share of a core and its CPU time per request. Where ``/proc`` is not
readable (macOS, Windows), ``take_sample`` returns None and the benchmark reports no CPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds at one instant: the server (``root``), each descendant, this process and
    the machine (busy and idle seconds summed over its cores)."""

    at: float
    root: int
    root_seconds: float
    descendant_seconds: dict[int, float]
    own_seconds: float
    machine_busy_seconds: float
    machine_idle_seconds: float


@dataclass(frozen=True)
class CpuUsage:
    """What each part used between two samples, in CPU seconds over ``elapsed_seconds``."""

    elapsed_seconds: float
    server_seconds: float
    server_children_seconds: float
    load_generator_seconds: float
    machine_idle_fraction: float

    def share(self, seconds: float) -> float:
        """CPU seconds as a fraction of one core over the phase (1.0 = a core kept busy)."""
        return seconds / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (which may hold spaces and
    parentheses, so the split starts after its closing parenthesis); None if the process is
    gone or unreadable."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    _, _, rest = text.rpartition(")")
    return rest.split()


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (all its threads), or None if it is gone."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 13:
        return None
    # After the name: state(0) ppid(1) … utime(11) stime(12), in clock ticks.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def parent_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[1]) if fields is not None and len(fields) > 1 else None


def descendants(root: int) -> set[int]:
    """Every living process whose chain of parents leads to ``root``."""
    parents: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            parent = parent_of(int(entry.name))
            if parent is not None:
                parents[int(entry.name)] = parent
    found: set[int] = set()
    frontier = {root}
    while frontier:
        children = {pid for pid, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= frontier
    return found


def machine_seconds() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    first = (PROC / "stat").read_text(encoding="ascii").splitlines()[0].split()
    ticks = [int(value) for value in first[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    busy = sum(ticks[:8]) - idle
    return busy / _CLOCK_TICKS, idle / _CLOCK_TICKS


def take_sample(root: int) -> CpuSample | None:
    """A sample of ``root`` and its descendants; None without a readable ``/proc`` or when
    ``root`` is not running."""
    if not (PROC / "stat").exists():
        return None
    root_seconds = process_cpu_seconds(root)
    if root_seconds is None:
        return None
    children = {pid: seconds for pid in descendants(root)
                if (seconds := process_cpu_seconds(pid)) is not None}
    busy, idle = machine_seconds()
    return CpuSample(at=time.perf_counter(), root=root, root_seconds=root_seconds,
                     descendant_seconds=children, own_seconds=time.process_time(),
                     machine_busy_seconds=busy, machine_idle_seconds=idle)


def usage_between(before: CpuSample, after: CpuSample) -> CpuUsage:
    """The CPU used from ``before`` to ``after``. A descendant started in between counts from
    zero; one that ended in between is missing from ``after`` and its last part is lost."""
    children = sum(seconds - before.descendant_seconds.get(pid, 0.0)
                   for pid, seconds in after.descendant_seconds.items())
    busy = after.machine_busy_seconds - before.machine_busy_seconds
    idle = after.machine_idle_seconds - before.machine_idle_seconds
    return CpuUsage(elapsed_seconds=after.at - before.at,
                    server_seconds=after.root_seconds - before.root_seconds,
                    server_children_seconds=children,
                    load_generator_seconds=after.own_seconds - before.own_seconds,
                    machine_idle_fraction=idle / (busy + idle) if busy + idle > 0 else 0.0)
