"""Hops per second one worker sustains, through `matrixhpc run`, on a zero-latency engine.

Baseline measured in the same run: the raw engine (the same zero-latency simulated
server, its own process, driven by a bare loop over the runtime's HTTP transport with
the same concurrency), i.e. the most LLM calls per second this machine pushes through
that server with no framework at all. A hop is one agent
step; the Coral workflow has 2 python steps per LLM call, so hops/s > calls/s.

    python -m benchmarks.hops [--tasks 2000] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.llm_client import raw_lean, start_server, wait_ready
from matrixhpc.llm.engines.process import free_port

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "hops.json"


def run_framework(tasks: int, workers: int, window: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        rows = 60
        trials = max(1, tasks // rows)
        argv = [sys.executable, "-m", "matrixhpc", "run", str(REPO / "configs" / "coral.yaml"),
                "--local", "--engine", "simulated", "services.llm.simulated.profile=zero",
                f"dataset.trials={trials}", f"workers.count={workers}",
                f"workers.window={window}", "services.llm.max_concurrency=1024",
                "--run-dir", str(run_dir)]  # fmt: skip
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        wall = time.perf_counter() - started
        statuses = [json.loads(p.read_text()) for p in (run_dir / "status").glob("*.json")]
    steps = sum(s["steps"] for s in statuses)
    busy = max(s["updated"] - s["started"] for s in statuses)
    cpu = sum(s["cpu_s"] for s in statuses)
    return {"tasks": rows * trials, "steps": steps, "worker_seconds": busy, "wall_seconds": wall,
            "hops_per_s": steps / busy, "cpu_us_per_hop": 1e6 * cpu / steps}  # fmt: skip


async def _raw_engine(requests: int, concurrency: int) -> float:
    port = free_port()
    server = start_server("simulated", port, "--profile", "zero")
    url = f"http://127.0.0.1:{port}/v1"
    try:
        await wait_ready(url)
        wall, _ = await raw_lean(url, requests, concurrency)
    finally:
        server.terminate()
        server.wait()
    return requests / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    fw = run_framework(args.tasks, args.workers, args.window)
    raw = asyncio.run(_raw_engine(5000, args.window))
    # ~1/3 of Coral hops are LLM calls (student/teacher), 2/3 python steps
    result = {**fw, "raw_engine_requests_per_s": raw, "workers": args.workers,
              "window": args.window}  # fmt: skip
    print(f"{'design':28} {'hops/s':>10} {'cpu us/hop':>11}")
    print(f"{'matrixhpc worker x' + str(args.workers):28} {fw['hops_per_s']:>10.0f} "
          f"{fw['cpu_us_per_hop']:>11.0f}")  # fmt: skip
    print(f"{'raw engine (requests/s)':28} {raw:>10.0f} {'-':>11}")
    print(
        f"llm_calls_per_s~{fw['hops_per_s'] / 3:.0f} ratio_to_raw_engine="
        f"{fw['hops_per_s'] / 3 / raw:.2f}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
