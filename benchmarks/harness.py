"""Run one design at one point (offered concurrency, worker processes) and measure it.

For each run: a fresh run directory holding the generated config, fresh engines (the
runtime starts its own; the baselines get identical ones, :mod:`benchmarks.engines`), the
design's processes, a /proc sampler for memory, then the metrics of :mod:`benchmarks.metrics`.
The capacity (utilisation's denominator) is measured once per invocation, on fresh
engines, by :mod:`benchmarks.capacity`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import batch, central, p2p
from benchmarks.capacity import Shape, measure
from benchmarks.engines import EngineSet, EngineSetup
from benchmarks.metrics import (
    cpu_per_hop,
    llm_spans,
    load_records,
    machine_load,
    memory,
    throughput,
)
from benchmarks.procs import ProcSampler
from benchmarks.workflow import Placement, write_config
from matrixhpc.files import read_json
from matrixhpc.launch.process import Child, stop
from matrixhpc.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
DESIGNS = ("p2p", "batch", "central")


@dataclass(frozen=True)
class Bench:
    """What stays fixed across the runs of one invocation."""

    setup: EngineSetup
    dataset: Path
    max_turns: int
    work_dir: Path
    timeout: float = 1800.0
    durability: str | None = None  # the runtime's workers.durability; None: its default


def run_design(
    bench: Bench, design: str, placement: Placement, capacity_tps: float
) -> dict[str, Any]:
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}")
    name = f"{design}-c{placement.inflight}-w{placement.workers}"
    run_dir = bench.work_dir / name
    shutil.rmtree(run_dir, ignore_errors=True)
    config = bench.work_dir / "configs" / f"{name}.yaml"
    cfg = write_config(
        config, bench.dataset, bench.setup, placement, bench.max_turns, bench.durability
    )
    sampler = ProcSampler().start()
    started = time.time()
    launcher_code = 0
    try:
        if design == "p2p":
            proc = p2p.launch(config, run_dir, bench.work_dir / f"{name}.log")
            statuses = p2p.statuses(run_dir, p2p.watch(proc, run_dir, bench.timeout))
            launcher_code = proc.returncode
        else:
            rd = RunDir(run_dir)
            rd.create(cfg)
            statuses = _run_baseline(bench, design, rd, placement)
    finally:
        sampler.stop()
    records = load_records(run_dir / "output")
    save_timeline(bench.work_dir / f"{name}.timeline.json.gz", records)
    elapsed = time.time() - started
    result: dict[str, Any] = {
        "design": design,
        "inflight": placement.inflight,
        "workers": placement.workers,
        "elapsed_s": elapsed,
        **throughput(records, capacity_tps),
        **machine_load(sampler.cpu_seconds(), elapsed, os.cpu_count() or 1),
        **cpu_per_hop([s for s in statuses if s.get("kind") != "dispatcher"] or statuses),
        **memory(sampler.peak(), placement.inflight),
        "launcher_exit_code": launcher_code,
    }
    dispatcher = [s for s in statuses if s.get("kind") == "dispatcher"]
    if dispatcher:  # the dispatcher's CPU is per-hop overhead of that design too
        d = dispatcher[0]
        extra = d["cpu_s"] - d["cpu_s_start"]
        result["dispatcher_cpu_s"] = extra
        result["dispatcher_cpu_us_per_hop"] = 1e6 * extra / max(1, result["hops"])
        result["cpu_us_per_hop"] += result["dispatcher_cpu_us_per_hop"]
        result["cpu_s"] += extra
    return result


def save_timeline(path: Path, records: list[dict[str, Any]]) -> None:
    """Each LLM call's (start, end, tokens) and each task's (first step, finish): enough to
    recompute every throughput figure after the run directory is gone."""
    timeline = {
        "llm": [[s.start, s.end, s.tokens] for s in llm_spans(records)],
        "tasks": [[r["history"][0]["timings"]["start"], r["finished"]] for r in records],
    }
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(timeline, fh)


def _run_baseline(
    bench: Bench, design: str, rd: RunDir, placement: Placement
) -> list[dict[str, Any]]:
    engines = EngineSet(rd, bench.setup.replicas)
    children: list[Child] = []
    try:
        engines.start()
        env = {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        }
        module = batch if design == "batch" else central
        children = module.launch(rd.root, placement.inflight, placement.workers, env)
        _wait(children, bench.timeout)
    finally:
        stop(children)
        engines.stop()
    return [s for p in sorted(rd.status.glob("*.json")) if (s := read_json(p)) is not None]


def _wait(children: list[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        codes = [c.exited() for c in children]
        failed = [c for c, code in zip(children, codes, strict=True) if code not in (None, 0)]
        if failed:
            raise RuntimeError(
                f"{failed[0].name} exited with {failed[0].exited()}: {failed[0].log}"
            )
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"baseline did not finish in {timeout:.0f}s")
        time.sleep(0.2)


def capacity(bench: Bench, shapes: list[Shape], seconds: float) -> dict[str, Any]:
    """Saturated output tokens/s of fresh replicas, by the pure load generator."""
    run_dir = bench.work_dir / "capacity"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = write_config(
        bench.work_dir / "configs" / "capacity.yaml", bench.dataset, bench.setup,
        Placement(1, 1), bench.max_turns,
    )  # fmt: skip
    rd = RunDir(run_dir)
    rd.create(cfg)
    engines = EngineSet(rd, bench.setup.replicas)
    try:
        replicas = engines.start()
        from matrixhpc.llm.engines.simulated import PROFILES

        concurrency = 2 * bench.setup.replicas * PROFILES[bench.setup.profile].max_batch
        return asyncio.run(measure(replicas, shapes, concurrency, seconds))
    finally:
        engines.stop()
