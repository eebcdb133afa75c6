"""What else the machine does while we time: load average, other processes' CPU use, steal.

A latency measured while other processes run is a measurement of them as much as of the
network. `LoadWatch` notes the 1-minute load average at the start and end of a
measurement and, where the kernel says (Linux `/proc/stat`), how many cores other
processes kept busy on average meanwhile -- this process's own threads excluded, which
the load average cannot do -- and the steal time: the share of this virtual machine's CPU
time its hypervisor gave to other guests. Steal is invisible to the load average and to
`top`, yet it slows every measurement on a shared host. `busy()` says when either is
enough to distrust the numbers.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

try:
    import resource  # POSIX only
except ImportError:  # Windows: this process's own CPU time only (its children's is unknown there)
    resource = None

BUSY_CORES = 0.25  # other processes using more than this many cores on average: the numbers are suspect
BUSY_STEAL_PCT = 5.0  # the hypervisor took more than this share of our CPU time: the numbers are suspect


def load_1min() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy, steal): CPU seconds all processes have used since boot (user, nice, system, irq,
    softirq) and those the hypervisor gave to other guests; None where /proc/stat is not there."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    steal = fields[7] if len(fields) > 7 else 0
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _own_seconds() -> float:
    if resource is None:
        return time.process_time()
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


@dataclass
class LoadWatch:
    """Start with `start()`, end with `stop()`; then `record()` for a sidecar and `busy()`."""

    load_start: float | None = None
    load_end: float | None = None
    other_cores: float | None = None  # average cores other processes kept busy meanwhile
    steal_pct: float | None = None  # share of the cores' time the hypervisor gave to other guests meanwhile
    seconds: float = 0.0
    _t0: float = field(default=0.0, repr=False)
    _cpu0: tuple[float, float] | None = field(default=None, repr=False)
    _own0: float = field(default=0.0, repr=False)

    def start(self) -> "LoadWatch":
        self.load_start, self._t0 = load_1min(), time.monotonic()
        self._cpu0, self._own0 = _cpu_seconds(), _own_seconds()
        return self

    def stop(self) -> "LoadWatch":
        self.seconds = time.monotonic() - self._t0
        self.load_end = load_1min()
        now = _cpu_seconds()
        if now is not None and self._cpu0 is not None and self.seconds > 0:
            other = (now[0] - self._cpu0[0]) - (_own_seconds() - self._own0)
            self.other_cores = round(max(0.0, other / self.seconds), 2)
            self.steal_pct = round(max(0.0, 100 * (now[1] - self._cpu0[1]) / (self.seconds * cores())), 1)
        return self

    def busy(self) -> bool:
        """Other processes used a noticeable share of the CPU, or the hypervisor did (steal); where
        that is unknown, the load average at the start already exceeded half the cores."""
        if self.steal_pct is not None and self.steal_pct > BUSY_STEAL_PCT:
            return True
        if self.other_cores is not None:
            return self.other_cores > BUSY_CORES
        return self.load_start is not None and self.load_start > 0.5 * cores()

    def record(self) -> dict[str, Any]:
        return {"load_1min_start": self.load_start, "load_1min_end": self.load_end, "other_processes_cores": self.other_cores,
                "steal_pct": self.steal_pct, "cores": cores(), "seconds": round(self.seconds, 1)}

    def describe(self) -> str:
        other = f"other processes kept {self.other_cores:.2f} cores busy" if self.other_cores is not None else "other processes' use unknown"
        steal = f", the hypervisor took {self.steal_pct:.1f}% (steal)" if self.steal_pct else ""
        return f"{other}{steal}, load average {self.load_start} -> {self.load_end} on {cores()} cores"
