"""Quick mode: the three designs once, at the concurrency the replicas can batch (< 3 min).

    .venv/bin/python -m benchmarks.quick [--tasks 3000] [--inflight N] [--workers 2]

Two regimes, same dataset, same placement:

* **engine-bound** (the simulated H100 replicas): what a design gets out of the LLM
  capacity it is given;
* **framework-bound** (the ``zero`` engine, which answers at once): what a design's own
  machinery sustains when the LLM side is effectively unlimited — the regime of a
  large GPU allocation, where a central dispatcher's single process becomes the limit.

Writes ``benchmarks/results/quick.json``; the last line printed is
``p2p_vs_batch=<x> p2p_vs_central=<y> llm_utilisation=<u>`` (engine-bound output
tokens/s ratios; the runtime's steady-window utilisation of the replicas' measured
capacity); the line before it gives the framework-bound ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
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
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def framework_bound(bench: Bench, placement: Placement, designs: list[str]) -> list[dict[str, Any]]:
    """The same runs on the zero-latency engine: each design's own ceiling."""
    zero = replace(
        bench,
        setup=EngineSetup(profile="zero", replicas=1, time_scale=0.0),
        work_dir=bench.work_dir / "framework-bound",
    )
    runs = []
    for design in designs:
        run = run_design(zero, design, placement, 0.0)
        run["regime"] = "framework-bound"
        runs.append(run)
        print(table(runs[-1:], header=len(runs) == 1), flush=True)
    return runs


def ratios(runs: list[dict[str, Any]], key: str = "output_tokens_per_s") -> dict[str, float]:
    """p2p's ``key`` over each other design's."""
    by = {r["design"]: r.get(key, 0.0) for r in runs}
    mine = by.get("p2p", 0.0)
    return {d: float(mine / v) if v else 0.0 for d, v in by.items() if d != "p2p"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--inflight", type=int, help="default: replicas x the profile's batch")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument(
        "--skip-framework-bound", action="store_true", help="engine-bound runs only"
    )
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
    designs = args.designs.split(",")
    free: list[dict[str, Any]] = []
    try:
        for design in designs:
            runs.append(run_design(bench, design, placement, cap))
            print(table(runs[-1:], header=len(runs) == 1), flush=True)
        if not args.skip_framework_bound:
            print("framework-bound (zero-latency engine):", flush=True)
            free = framework_bound(bench, placement, designs)
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)
    result = {
        "machine": machine(),
        **info,
        "runs": runs,
        "framework_bound_runs": free,
        "seconds": time.time() - started,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quick.json").write_text(json.dumps(result, indent=2))
    engine, sustained, fw = ratios(runs), ratios(runs, "sustained_tokens_per_s"), ratios(free)
    print(f"total {result['seconds']:.0f}s; results: {RESULTS / 'quick.json'}")
    print(
        f"sustained (admission phase, no final drain): "
        f"p2p_vs_batch={sustained.get('batch', 0):.2f} "
        f"p2p_vs_central={sustained.get('central', 0):.2f}"
    )
    if fw:
        print(
            f"framework-bound: p2p_vs_batch={fw.get('batch', 0):.2f} "
            f"p2p_vs_central={fw.get('central', 0):.2f}"
        )
    util = next((r.get("llm_utilisation", 0.0) for r in runs if r["design"] == "p2p"), 0.0)
    print(
        f"p2p_vs_batch={engine.get('batch', 0):.2f} p2p_vs_central={engine.get('central', 0):.2f} "
        f"llm_utilisation={util:.3f}"
    )


if __name__ == "__main__":
    main()
