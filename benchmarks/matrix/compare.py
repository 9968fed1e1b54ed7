"""matrixhpc against Meta's Matrix (fair-matrix 0.2.6) on ONE simulated LLM server.

    python -m benchmarks.matrix.compare [--tasks 300] [--inflight 128] [--turns 6]
        [--max-tokens 256] [--repeats 2] [--regimes engine-bound,zero-latency]

Needs the Matrix venv (``bash benchmarks/matrix/setup_venv.sh``). For each regime one
``matrixhpc serve simulated`` process is started and both frameworks run the same Coral
workload against it, interleaved (matrixhpc, Matrix, matrixhpc, Matrix, ...), one at a
time. Regimes:

* **engine-bound**: the H100 profile at time scale 1 (real-time speed of one simulated
  H100 serving Llama-3.1-8B): what each framework gets out of one GPU server;
* **zero-latency**: the ``zero`` profile (answers at once): each framework's own ceiling.

Writes ``benchmarks/results/matrix_comparison.json`` and ``matrix_comparison.png`` (drawn
by the Matrix venv's matplotlib); the last line printed is
``matrixhpc_vs_matrix tokens_ratio=<x> cpu_ratio=<y> ...`` (:mod:`.summary`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.matrix.dataset import write_rows
from benchmarks.matrix.runs import HERE, MATRIX_VENV, Workload, run_matrix, run_matrixhpc
from benchmarks.matrix.server import SimServer
from benchmarks.matrix.summary import markdown, ratios, summarise, summary_line
from benchmarks.report import machine
from matrixhpc.llm.engines.simulated import PROFILES

RESULTS = HERE.parent / "results"
ENGINES = {"engine-bound": ("h100-llama3.1-8b", 1.0), "zero-latency": ("zero", 0.0)}
RUNNERS = {"matrixhpc": run_matrixhpc, "matrix": run_matrix}


def ceiling(profile: str, scale: float, w: Workload, prompt_tokens: float) -> float:
    """The server's closed-loop output tok/s with every admitted task's LLM call in flight
    (python steps taking no time): the most any framework can get from it."""
    p = PROFILES[profile]
    if p.instant or not scale:
        return 0.0
    return p.closed_loop_tps(w.inflight, round(prompt_tokens), w.max_tokens) / scale


def versions() -> dict[str, str]:
    """fair-matrix's and Ray's versions in the Matrix venv."""
    code = "import importlib.metadata as m; print(m.version('fair-matrix'), m.version('ray'))"
    python = str(MATRIX_VENV / "bin" / "python")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    matrix, ray = out.stdout.split()
    return {"fair-matrix": matrix, "ray": ray}


def run_regime(regime: str, w: Workload, rows: Path, work: Path, repeats: int,
               timeout: float) -> list[dict[str, Any]]:  # fmt: skip
    profile, scale = ENGINES[regime]
    server = SimServer(profile, scale).start()
    runs = []
    try:
        for k in range(repeats):
            for fw, runner in RUNNERS.items():
                run_dir = work / f"{regime}-{fw}-{k}"
                shutil.rmtree(run_dir, ignore_errors=True)
                result = runner(server, w, rows, run_dir, timeout)
                result.update(regime=regime, framework=fw, repeat=k)
                result["tasks_per_s"] = result["records_complete"] / max(result["active_s"], 1e-9)
                top = ceiling(profile, scale, w, result["mean_prompt_tokens"])
                result["model_ceiling_tps"] = top
                if top:  # engine-bound only: the zero engine has no ceiling
                    result["ceiling_share"] = result["output_tokens_per_s"] / top
                runs.append(result)
                print(_line(result), flush=True)
    finally:
        server.stop()
    return runs


def _line(r: dict[str, Any]) -> str:
    return (f"{r['regime']:>12} {r['framework']:>9} #{r['repeat']}: "
            f"{r['output_tokens_per_s']:9.0f} tok/s {r['tasks_per_s']:8.2f} tasks/s "
            f"running {r['mean_running']:6.1f}  CPU {r['cpu_s']:6.1f} s "
            f"(active {r['cpu_s_active']:6.1f})  RSS {r['rss_peak_mb']:6.0f} MiB  "
            f"start-up {r['startup_s']:5.1f} s  complete {r['records_complete']}/"
            f"{r['records']}  exit {r['exit_code']}")  # fmt: skip


def plot(results: Path, png: Path) -> bool:
    """Draw the PNG with the Matrix venv's matplotlib (the project venv has none)."""
    python = MATRIX_VENV / "bin" / "python"
    done = subprocess.run([str(python), str(HERE / "plot.py"), str(results), str(png)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        print(f"plot skipped: {done.stderr.strip()[-300:]}")
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    d = Workload()
    parser.add_argument("--tasks", type=int, default=d.tasks)
    parser.add_argument("--inflight", type=int, default=d.inflight)
    parser.add_argument("--turns", type=int, default=d.turns)
    parser.add_argument("--max-tokens", type=int, default=d.max_tokens)
    parser.add_argument("--workers", type=int, default=d.workers)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--regimes", default=",".join(ENGINES))
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--work-dir", type=Path, help="keep run directories and logs here")
    parser.add_argument("--results", type=Path, default=RESULTS / "matrix_comparison.json")
    args = parser.parse_args()
    regimes = [r for r in args.regimes.split(",") if r]
    unknown = [r for r in regimes if r not in ENGINES]
    if unknown or args.repeats < 1 or args.tasks < 1 or args.turns < 1 or args.inflight < 1:
        parser.error(f"--regimes from {sorted(ENGINES)}; --repeats, --tasks, --turns, "
                     f"--inflight >= 1 (got regimes {unknown or regimes})")  # fmt: skip
    if not (MATRIX_VENV / "bin" / "python").exists():
        parser.error(f"no Matrix venv at {MATRIX_VENV}: run bash {HERE / 'setup_venv.sh'}")
    w = Workload(args.tasks, args.inflight, args.turns, args.max_tokens, args.workers)
    started = time.time()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="matrix-vs-"))
    before = machine()
    try:
        rows = write_rows(w.tasks, work / "rows.jsonl")
        runs = [r for regime in regimes for r in run_regime(regime, w, rows, work, args.repeats,
                                                            args.timeout)]  # fmt: skip
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs)
    result = {
        "machine": before,
        "load_avg_after": machine()["load_avg"],
        "versions": versions(),
        "workload": {**asdict(w), "expected_output_tokens": w.tokens},
        "engines": {
            r: {"profile": p, "time_scale": s} for r, (p, s) in ENGINES.items() if r in regimes
        },
        "runs": runs,
        "summary": summary,
        "ratios": {regime: ratios(by_fw) for regime, by_fw in summary.items()},
        "line": summary_line(summary),
        "seconds": time.time() - started,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2))
    plot(args.results, args.results.with_suffix(".png"))
    print(markdown(summary))
    print(f"total {result['seconds']:.0f}s; results: {args.results}")
    print(result["line"])


if __name__ == "__main__":
    main()
