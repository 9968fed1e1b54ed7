"""Full sweep: the three designs over offered concurrency and over worker processes, plus
framework overhead on a zero-latency engine; writes results JSON and the plot.

    .venv/bin/python -m benchmarks.sweep                        # everything (~1 h here)
    .venv/bin/python -m benchmarks.sweep --only inflight --inflight 100,1000,10000
    .venv/bin/python -m benchmarks.sweep --only overhead

Parts (``--only``, comma-separated):

* ``inflight``: 2 worker processes; in-flight tasks 100 -> 50,000. Each point runs
  ``max(--min-tasks, 2 x in-flight)`` tasks so that every design reaches its steady state.
* ``workers``: in-flight fixed (``--workers-inflight``), 1 -> 16 worker processes.
* ``overhead``: the ``zero`` profile (answers at once): CPU per hop and hops/s of each
  design, and of the runtime with its journal off; the bare-aiohttp CPU per request
  measured in the same run splits the runtime's per-hop CPU into HTTP client and the rest.

Results: ``benchmarks/results/sweep_<part>.json``; plot: ``benchmarks/results/throughput.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.capacity import shapes
from benchmarks.dialogue import OPENING, SYSTEM
from benchmarks.engines import EngineSetup
from benchmarks.harness import DESIGNS, Bench, capacity, run_design
from benchmarks.quick import RESULTS, add_common, stop_on_sigterm
from benchmarks.report import machine, plot, table
from benchmarks.workflow import Placement
from benchmarks.workload import WorkloadSpec, read_rows, summarize, write_dataset

PARTS = ("inflight", "workers", "overhead")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


class Sweep:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.setup = EngineSetup(
            profile=args.profile, replicas=args.replicas, time_scale=args.time_scale
        )
        self.spec = WorkloadSpec(tasks=args.min_tasks, max_turns=args.max_turns)
        self.designs = args.designs.split(",")
        self._capacity: dict[str, Any] | None = None

    def bench(self, tasks: int, setup: EngineSetup | None = None, tag: str = "") -> Bench:
        spec = replace(self.spec, tasks=tasks)
        dataset = self.work / f"dialogues-{tasks}.jsonl"
        if not dataset.exists():
            write_dataset(spec, dataset)
        work = self.work / (tag or f"n{tasks}")
        return Bench(setup or self.setup, dataset, spec.max_turns, work, self.args.timeout)

    def capacity(self) -> dict[str, Any]:
        if self._capacity is None:
            bench = self.bench(self.args.min_tasks)
            rows = read_rows(bench.dataset)
            items = shapes(rows, len(SYSTEM) + len(OPENING), 4000, self.spec.seed)
            self._capacity = capacity(bench, items, self.args.capacity_seconds)
            print(f"capacity: {self._capacity['tokens_per_s']:.0f} output tok/s", flush=True)
        return self._capacity

    def points(self, placements: list[Placement], tasks_for: Any) -> list[dict[str, Any]]:
        cap = self.capacity()["tokens_per_s"]
        runs: list[dict[str, Any]] = []
        for placement in placements:
            bench = self.bench(tasks_for(placement))
            for design in self.designs:
                run = run_design(bench, design, placement, cap)
                print(table([run], header=not runs), flush=True)
                runs.append(run)
                name = f"{design}-c{placement.inflight}-w{placement.workers}"
                shutil.rmtree(bench.work_dir / name, ignore_errors=True)  # keep the disk small
        return runs

    def inflight(self) -> dict[str, Any]:
        levels = _ints(self.args.inflight)
        placements = [Placement(n, self.args.procs) for n in levels]
        runs = self.points(placements, lambda p: max(self.args.min_tasks, 2 * p.inflight))
        return {"part": "inflight", "workers": self.args.procs, "runs": runs}

    def workers(self) -> dict[str, Any]:
        counts = _ints(self.args.workers)
        placements = [Placement(self.args.workers_inflight, w) for w in counts]
        runs = self.points(placements, lambda _p: self.args.min_tasks)
        return {"part": "workers", "inflight": self.args.workers_inflight, "runs": runs}

    def overhead(self) -> dict[str, Any]:
        """Zero-latency engine: what each design costs per hop when the LLM costs nothing.

        Every configuration runs ``--overhead-repeat`` times, interleaved (so a burst of
        background load hits all designs alike); the run with the median CPU per hop is
        reported, with every trial's figure (background load only ever adds CPU: the
        minimum is the best estimate of the intrinsic cost).
        """
        zero = EngineSetup(profile="zero", replicas=1, time_scale=0.0)
        tasks = self.args.overhead_tasks
        trials: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for _ in range(self.args.overhead_repeat):
            for procs in (1, 2):
                placement = Placement(self.args.overhead_inflight, procs)
                for design in (*self.designs, "p2p-journal-off"):
                    bench = self.bench(tasks, zero, tag=f"zero-{design}-{procs}")
                    if design == "p2p-journal-off":
                        bench = replace(bench, durability="off")
                    run = run_design(bench, design.split("-")[0], placement, 0.0)
                    run["design"] = design
                    run["hops_per_s"] = run["hops"] / run["wall_s"]
                    print(table([run], header=not trials), f"hops/s={run['hops_per_s']:.0f}",
                          flush=True)  # fmt: skip
                    trials.setdefault((design, procs), []).append(run)
        runs = []
        for group in trials.values():
            group.sort(key=lambda r: r["cpu_us_per_hop"])
            median = dict(group[len(group) // 2])
            median["cpu_us_per_hop_trials"] = [r["cpu_us_per_hop"] for r in group]
            median["cpu_us_per_hop_min"] = group[0]["cpu_us_per_hop"]
            median["hops_per_s_trials"] = [r["hops_per_s"] for r in group]
            runs.append(median)
        bare = asyncio.run(bare_client_cpu(self.bench(tasks, zero, tag="zero-bare"), tasks))
        for run in runs:
            share = run["llm_calls"] * bare / max(1, run["hops"])
            run["bare_http_us_per_hop"] = share
            run["framework_us_per_hop"] = run["cpu_us_per_hop"] - share
            run["framework_us_per_hop_min"] = run["cpu_us_per_hop_min"] - share
        return {"part": "overhead", "bare_client_us_per_request": bare, "runs": runs}


async def bare_client_cpu(bench: Bench, _tasks: int) -> float:
    """CPU microseconds per request of the runtime's bare HTTP transport with the workload's
    bodies, against the zero-latency engine (what the framework cannot avoid spending)."""
    from benchmarks.capacity import measure
    from benchmarks.engines import EngineSet
    from benchmarks.workflow import write_config
    from matrixhpc.rundir import RunDir

    rows = read_rows(bench.dataset)
    items = shapes(rows, len(SYSTEM) + len(OPENING), 4000, 0)
    cfg = write_config(bench.work_dir / "bare.yaml", bench.dataset, bench.setup,
                       Placement(1, 1), bench.max_turns)  # fmt: skip
    rd = RunDir(bench.work_dir / "bare")
    rd.create(cfg)
    engines = EngineSet(rd, 1)
    try:
        replicas = engines.start()
        trials = [(await measure(replicas, items, 64, 5.0))["client_cpu_us_per_request"]
                  for _ in range(5)]  # fmt: skip
    finally:
        engines.stop()
    return float(min(trials))  # as for the designs: background load only adds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--inflight", default="100,300,1000,3000,10000,50000")
    parser.add_argument("--procs", type=int, default=2, help="worker processes (inflight part)")
    parser.add_argument("--workers", default="1,2,4,8,16")
    parser.add_argument("--workers-inflight", type=int, default=2048)
    parser.add_argument("--min-tasks", type=int, default=4000)
    parser.add_argument("--overhead-tasks", type=int, default=6000)
    parser.add_argument("--overhead-inflight", type=int, default=512)
    parser.add_argument("--overhead-repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=3600.0)
    add_common(parser)
    parser.set_defaults(capacity_seconds=20.0)
    args = parser.parse_args()
    stop_on_sigterm()
    temp = None if args.work_dir else Path(tempfile.mkdtemp(prefix="matrixhpc-sweep-"))
    work = args.work_dir or temp
    assert work is not None
    sweep = Sweep(args, work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    common = {"machine": machine(), "engines": sweep.setup.describe(),
              "workload": summarize(read_rows(sweep.bench(args.min_tasks).dataset))}  # fmt: skip
    try:
        for part in args.only.split(","):
            started = time.time()
            result = {**common, **getattr(sweep, part)()}
            if part != "overhead":
                result["capacity"] = sweep.capacity()
            result["seconds"] = time.time() - started
            (RESULTS / f"sweep_{part}.json").write_text(json.dumps(result, indent=2))
            if part == "inflight":
                plot(result, RESULTS / "throughput.png", result["capacity"]["tokens_per_s"])
            print(f"{part}: {result['seconds']:.0f}s -> {RESULTS / f'sweep_{part}.json'}")
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
