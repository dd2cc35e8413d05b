"""CPU time and memory of a process tree, sampled from /proc (through psutil).

CPU time is exact: user + system of every live process in the tree, plus what the kernel has
already folded into each parent for children that exited (cutime/cstime), so Postfix's
short-lived smtpd/cleanup/smtp processes count too. Memory is sampled: the peak of the
tree's summed PSS (RSS for a single process) over the samples, and the kernel's own
high-water mark (VmHWM) of the root process, which catches a peak between samples. VmHWM is
reset (``clear_refs``) when a measurement starts, so each scenario gets its own peak.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_INTERVAL = 0.05
Sample = tuple[float, float, float]  # monotonic time, machine busy CPU s, the bench's CPU s


@dataclass
class Usage:
    cpu_s: float  # user + system, whole tree, over the measurement
    peak_rss_mb: float  # sampled peak: RSS of a single process, summed PSS of a tree
    hwm_mb: float  # VmHWM of the root process (kernel-tracked peak since the reset)
    processes: int  # the most processes seen in the tree at once


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _rss(procs: list[psutil.Process]) -> float:
    """RSS of one process; for several, the sum of their PSS (proportional set size), so the
    libraries and the code they share are counted once, not once per process."""
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            if len(procs) == 1:
                total += proc.memory_info().rss
            else:
                total += proc.memory_full_info().pss
    return total / 2**20


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def reset_hwm(pid: int) -> None:
    """Reset the kernel's peak RSS of `pid` (Linux >= 4.0; needs root or the same user)."""
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_text("5")


def _busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class Machine:
    """Tells the bench's own CPU use from everyone else's: this machine may be shared (other
    sessions running their tests), and a benchmark run next to a busy neighbour is noise."""

    def __init__(self, extra_roots: list[int] | None = None, budget: float = 120.0) -> None:
        self.me = psutil.Process()
        self.extra_roots = extra_roots or []  # daemons not started as our children (Postfix)
        self.budget = budget  # seconds the whole run may spend waiting for quiet
        self.waited = 0.0

    def ours(self) -> float:
        procs = _tree(self.me)
        for pid in self.extra_roots:
            with contextlib.suppress(psutil.NoSuchProcess):
                procs += _tree(psutil.Process(pid))
        return _cpu(procs)

    def sample(self) -> Sample:
        return time.monotonic(), _busy(), self.ours()

    @staticmethod
    def foreign_cores(
        before: tuple[float, float, float], after: tuple[float, float, float]
    ) -> float:
        """Cores busy with processes that are not the bench's, on average between two samples."""
        wall = max(after[0] - before[0], 1e-9)
        return max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / wall

    def wait_quiet(
        self, threshold: float = 0.3, window: float = 1.0, patience: float = 60.0
    ) -> float:
        """Wait (up to `patience` seconds, and the run's remaining budget) until other
        processes use less than `threshold` cores over `window`; the foreign load last seen."""
        began = time.monotonic()
        deadline = began + min(patience, max(0.0, self.budget - self.waited))
        window = min(window, 0.3) if self.waited >= self.budget else window
        while True:
            before = self.sample()
            time.sleep(window)
            foreign = self.foreign_cores(before, self.sample())
            if foreign < threshold or time.monotonic() > deadline:
                self.waited += time.monotonic() - began
                return round(foreign, 2)


class TreeMonitor:
    """Measure one process tree between ``start()`` and ``stop()``."""

    def __init__(self, pids: list[int]) -> None:
        self._roots = [psutil.Process(pid) for pid in pids]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu0 = 0.0
        self._peak = 0.0
        self._most = 0

    def _procs(self) -> list[psutil.Process]:
        procs: list[psutil.Process] = []
        for root in self._roots:
            procs += _tree(root)
        return procs

    def _sample(self) -> None:
        procs = self._procs()
        self._most = max(self._most, len(procs))
        self._peak = max(self._peak, _rss(procs))

    def _loop(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self._sample()

    def start(self) -> None:
        for root in self._roots:
            reset_hwm(root.pid)
        self._cpu0 = _cpu(self._procs())
        self._peak = 0.0
        self._most = 0
        self._sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="procstat", daemon=True)
        self._thread.start()

    def stop(self) -> Usage:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
        cpu = _cpu(self._procs()) - self._cpu0
        hwm = max((vm_hwm_mb(root.pid) for root in self._roots), default=0.0)
        return Usage(
            cpu_s=round(max(cpu, 0.0), 3),
            peak_rss_mb=round(self._peak, 1),
            hwm_mb=round(hwm, 1),
            processes=self._most,
        )
