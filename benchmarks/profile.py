"""Where a design's worker CPU goes per hop (py-spy); by default on the zero-latency engine.

    .venv/bin/pip install py-spy
    .venv/bin/python -m benchmarks.profile [--design p2p] [--tasks 8000] [--workers 1]
    .venv/bin/python -m benchmarks.profile --engine-profile h100-llama3.1-8b --time-scale 0.1 \
        --replicas 2 --inflight 1024 --workers 2 --tasks 4000      # engine-bound, as in quick

Runs the design (as :mod:`benchmarks.harness` does) and attaches ``py-spy record`` to each
of its framework processes (runtime workers, batch processes, dispatcher and step
workers). The samples are folded by function (inclusive and self share of the samples)
and by area (HTTP client, JSON, Jinja, the runtime's modules, ...), printed and written to
``benchmarks/results/profile_<design>[_engine_bound].txt``.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.engines import EngineSetup
from benchmarks.harness import Bench, run_design
from benchmarks.procs import descendants
from benchmarks.workflow import Placement
from benchmarks.workload import WorkloadSpec, write_dataset

RESULTS = Path(__file__).resolve().parent / "results"
PY_SPY = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
FRAMEWORK = (b"worker", b"benchmarks.batch", b"benchmarks.central")
# first match wins: the area a sample's innermost interesting frame belongs to
AREAS = (
    ("json encode/decode", ("json/",)),
    ("jinja2 (prompts, stop_when)", ("jinja2/",)),
    ("msgpack / journal", ("msgpack", "runtime/journal.py", "runtime/recovery.py")),
    ("aiohttp (HTTP client)", ("aiohttp/", "yarl/", "multidict/")),
    ("LLMClient", ("llm/client.py", "llm/replicas.py")),
    ("agents", ("agents/", "benchmarks/dialogue.py")),
    ("routing", ("routing.py",)),
    ("output shards", ("data/writers.py",)),
    ("runtime worker/origin/handoff", ("runtime/",)),
    ("registry / status files", ("registry.py", "stats.py")),
    ("zmq", ("zmq/",)),
    ("asyncio / event loop", ("asyncio/", "uvloop", "runners.py")),
)


def _framework_pids() -> list[int]:
    found = []
    for pid in descendants(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a in FRAMEWORK for a in argv) and b"serve" not in argv:
            found.append(pid)
    return found


def record(design: str, bench: Bench, placement: Placement, rate: int, out: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: result.update(run_design(bench, design, placement, 0.0)), daemon=True
    )
    runner.start()
    spies: dict[int, subprocess.Popen[bytes]] = {}
    while runner.is_alive():
        for pid in _framework_pids():
            if pid not in spies:
                argv = [PY_SPY, "record", "-p", str(pid), "-f", "raw", "-r", str(rate),
                        "--nonblocking", "-o", str(out / f"{pid}.txt")]  # fmt: skip
                spies[pid] = subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
        time.sleep(0.05)
    for spy in spies.values():
        spy.wait(60)
    return result


def fold(paths: list[Path]) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """Total samples, inclusive samples by function, samples by area."""
    inclusive: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += n
            areas[_area(frames)] += n
    return total, inclusive, areas


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, keys in AREAS:
            if any(k in frame for k in keys):
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", default="p2p", choices=("p2p", "batch", "central"))
    parser.add_argument("--tasks", type=int, default=8000)
    parser.add_argument("--inflight", type=int, default=512)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rate", type=int, default=250, help="samples/s per process")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--engine-profile", default="zero", help="e.g. h100-llama3.1-8b")
    parser.add_argument("--time-scale", type=float, default=0.0)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="matrixhpc-profile-"))
    try:
        spec = WorkloadSpec(tasks=args.tasks)
        dataset = write_dataset(spec, work / "dialogues.jsonl")
        setup = EngineSetup(args.engine_profile, args.replicas, args.time_scale)
        bench = Bench(setup, dataset, spec.max_turns, work)
        out = work / "spy"
        out.mkdir()
        run = record(args.design, bench, Placement(args.inflight, args.workers), args.rate, out)
        total, inclusive, areas = fold(sorted(out.glob("*.txt")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_hop = run.get("cpu_us_per_hop", 0.0)
    lines = [
        f"design={args.design} engine={args.engine_profile}@{args.time_scale} "
        f"workers={args.workers} inflight={args.inflight} "
        f"tasks={args.tasks} hops={run.get('hops')} cpu_us_per_hop={per_hop:.0f} "
        f"samples={total}",
        "",
        "by area (innermost matching frame):",
    ]
    lines += [
        f"  {100 * n / total:5.1f}%  ~{per_hop * n / total:4.0f} us/hop  {name}"
        for name, n in areas.most_common()
    ]
    lines += ["", "inclusive, by function:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(args.top)]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.engine_profile == "zero" else "_engine_bound"
    (RESULTS / f"profile_{args.design}{suffix}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
