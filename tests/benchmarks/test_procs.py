"""The /proc sampler: descendants split into engine and framework by a classifier."""

from __future__ import annotations

import subprocess
import sys
from itertools import pairwise

from benchmarks.procs import ProcSampler

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n" \
       "time.sleep(0.3)\n"  # fmt: skip


def sampled(engine: bool) -> ProcSampler:
    child = subprocess.Popen([sys.executable, "-c", BURN])
    sampler = ProcSampler(interval=0.05, classify=lambda pid: engine and pid == child.pid)
    sampler.start()
    child.wait()
    sampler.stop()
    return sampler


def test_classifier_decides_what_is_framework() -> None:
    framework = sampled(engine=False)
    assert framework.cpu_seconds()["framework_cpu_s"] > 0
    assert framework.cpu_seconds()["engine_cpu_s"] == 0
    assert framework.peak()["framework_mb"] > 0
    engine = sampled(engine=True)
    assert engine.cpu_seconds()["framework_cpu_s"] == 0
    assert engine.cpu_seconds()["engine_cpu_s"] > 0


def test_cpu_since_a_time_counts_only_what_came_after() -> None:
    s = sampled(engine=False)
    total = s.cpu_seconds()["framework_cpu_s"]
    assert s.framework_cpu_since(s.samples[0].t - 1.0) == total
    assert s.framework_cpu_since(s.samples[-1].t) == 0.0
    assert all(a.framework_cpu_s <= b.framework_cpu_s for a, b in pairwise(s.samples))
