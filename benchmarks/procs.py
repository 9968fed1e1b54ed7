"""Resident memory and CPU time of a design's processes, sampled from /proc (Linux).

A background thread walks the descendants of this (the harness) process every
``interval`` seconds; engines (by default ``... serve ...`` command lines; ``classify``
decides) are counted apart from the framework (workers, dispatcher, the ``matrixhpc run``
launcher). Runs happen one at a time, so every descendant belongs to the design being
measured. CPU time is each process's last sampled user+system time (a process's last
``interval`` before it exits is missed: the figures are slightly low), enough to show
whether the machine's cores or the engines' single threads were saturated. Each sample
also keeps the framework's CPU seconds so far, so the CPU of a part of a run (after its
start-up) can be read off.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sample:
    t: float
    framework_mb: float
    engine_mb: float
    processes: int
    framework_cpu_s: float = 0.0  # CPU seconds of every framework process seen so far


@dataclass
class ProcSampler:
    interval: float = 0.5
    classify: Callable[[int], bool] | None = None  # is this pid an engine? default: is_engine
    samples: list[Sample] = field(default_factory=list)
    cpu: dict[int, tuple[bool, float]] = field(default_factory=dict)  # pid -> (engine, s)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcSampler:
        self._thread = threading.Thread(target=self._loop, name="proc-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def peak(self) -> dict[str, float]:
        if not self.samples:
            return {"framework_mb": 0.0, "engine_mb": 0.0, "total_mb": 0.0, "processes": 0}
        return {
            "framework_mb": max(s.framework_mb for s in self.samples),
            "engine_mb": max(s.engine_mb for s in self.samples),
            "total_mb": max(s.framework_mb + s.engine_mb for s in self.samples),
            "processes": max(s.processes for s in self.samples),
        }

    def framework_cpu_since(self, t: float) -> float:
        """Framework CPU seconds from the last sample at or before ``t`` to the end."""
        before = [s.framework_cpu_s for s in self.samples if s.t <= t]
        return self.cpu_seconds()["framework_cpu_s"] - (before[-1] if before else 0.0)

    def cpu_seconds(self) -> dict[str, float]:
        engines = [s for eng, s in self.cpu.values() if eng]
        return {
            "framework_cpu_s": sum(s for eng, s in self.cpu.values() if not eng),
            "engine_cpu_s": sum(engines),
            "engine_cpu_s_max": max(engines, default=0.0),
        }

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            framework = engine = 0.0
            pids = descendants(me)
            for pid in pids:
                rss = rss_mb(pid)
                eng = (self.classify or is_engine)(pid)
                if eng:
                    engine += rss
                else:
                    framework += rss
                cpu = cpu_s(pid)
                if cpu is not None:
                    self.cpu[pid] = (eng, cpu)
            cpu_so_far = sum(s for eng, s in self.cpu.values() if not eng)
            self.samples.append(Sample(time.time(), framework, engine, len(pids), cpu_so_far))
            self._stop.wait(self.interval)


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, []))
    return out


def rss_mb(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def is_engine(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"serve" in argv
