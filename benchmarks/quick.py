"""Quick mode: the three designs once, at the concurrency the replicas can batch (< 3 min).

    .venv/bin/python -m benchmarks.quick [--tasks 3000] [--inflight N] [--workers 2]

Writes ``benchmarks/results/quick.json``; the last line printed is
``p2p_vs_batch=<x> p2p_vs_central=<y> llm_utilisation=<u>`` (output tokens/s ratios; the
runtime's steady-window utilisation of the replicas' measured capacity).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.capacity import shapes
from benchmarks.dialogue import OPENING, SYSTEM
from benchmarks.engines import EngineSetup
from benchmarks.harness import DESIGNS, Bench, capacity, run_design
from benchmarks.report import machine, table
from benchmarks.workflow import Placement
from benchmarks.workload import WorkloadSpec, read_rows, summarize, write_dataset
from matrixhpc.llm.engines.simulated import PROFILES

RESULTS = Path(__file__).resolve().parent / "results"


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-scale", type=float, default=EngineSetup().time_scale)
    parser.add_argument("--replicas", type=int, default=EngineSetup().replicas)
    parser.add_argument("--profile", default=EngineSetup().profile)
    parser.add_argument("--max-turns", type=int, default=WorkloadSpec().max_turns)
    parser.add_argument("--capacity-seconds", type=float, default=10.0)
    parser.add_argument("--work-dir", type=Path, help="keep run directories here")


def prepare(args: argparse.Namespace, tasks: int) -> tuple[Bench, dict[str, Any], Path | None]:
    """Dataset, engine setup and capacity: what every run of an invocation shares."""
    temp = None if args.work_dir else Path(tempfile.mkdtemp(prefix="matrixhpc-bench-"))
    work = args.work_dir or temp
    assert work is not None
    spec = WorkloadSpec(tasks=tasks, max_turns=args.max_turns)
    dataset = write_dataset(spec, work / "dialogues.jsonl")
    setup = EngineSetup(profile=args.profile, replicas=args.replicas, time_scale=args.time_scale)
    bench = Bench(setup=setup, dataset=dataset, max_turns=spec.max_turns, work_dir=work)
    rows = read_rows(dataset)
    system_chars = len(SYSTEM) + len(OPENING)
    cap = capacity(bench, shapes(rows, system_chars, 4000, spec.seed), args.capacity_seconds)
    info = {"workload": summarize(rows), "engines": setup.describe(), "capacity": cap}
    return bench, info, temp


def stop_on_sigterm() -> None:
    """SIGTERM (timeout, kill) unwinds like Ctrl-C, so every started process is stopped."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--inflight", type=int, help="default: replicas x the profile's batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    add_common(parser)
    args = parser.parse_args()
    stop_on_sigterm()
    started = time.time()
    bench, info, temp = prepare(args, args.tasks)
    cap = info["capacity"]["tokens_per_s"]
    print(f"capacity (pure load generator): {cap:.0f} output tok/s", flush=True)
    inflight = args.inflight or bench.setup.replicas * PROFILES[bench.setup.profile].max_batch
    placement = Placement(inflight, args.workers)
    runs = []
    try:
        for design in args.designs.split(","):
            runs.append(run_design(bench, design, placement, cap))
            print(table(runs[-1:], header=len(runs) == 1), flush=True)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    result = {"machine": machine(), **info, "runs": runs, "seconds": time.time() - started}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quick.json").write_text(json.dumps(result, indent=2))
    by = {r["design"]: r for r in runs}

    def ratio(other: str, key: str = "output_tokens_per_s") -> float:
        mine, base = by.get("p2p", {}).get(key, 0.0), by.get(other, {}).get(key, 0.0)
        return float(mine / base) if base else 0.0

    print(f"total {result['seconds']:.0f}s; results: {RESULTS / 'quick.json'}")
    print(
        f"sustained (admission phase, no final drain): "
        f"p2p_vs_batch={ratio('batch', 'sustained_tokens_per_s'):.2f} "
        f"p2p_vs_central={ratio('central', 'sustained_tokens_per_s'):.2f}"
    )
    util = by.get("p2p", {}).get("llm_utilisation", 0.0)
    print(
        f"p2p_vs_batch={ratio('batch'):.2f} p2p_vs_central={ratio('central'):.2f} "
        f"llm_utilisation={util:.3f}"
    )


if __name__ == "__main__":
    main()
