"""Launching each framework on the shared server and measuring one run of it.

Both are started the way a user starts them, as a process tree under this one:

* matrixhpc: ``python -m matrixhpc run coral_fixed.yaml --local --run-dir RD KEY=VALUE...``
  (the launcher, its workers and the ``serve external`` registration of the shared URL);
* Matrix: ``<Matrix venv>/bin/python run_matrix.py matrix_coral.yaml KEY=VALUE...`` (the
  driver with its local Ray cluster: GCS, raylet, the actors, Ray's helpers).

While one runs, :class:`~benchmarks.procs.ProcSampler` reads CPU and memory of every
descendant except the server, and :class:`~benchmarks.matrix.server.CounterPoller`
scrapes the server's counters. Runs never overlap: each waits for the server to be idle
and for the previous run's processes to be gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.matrix.records import matrix_turns, matrixhpc_turns, read_jsonl, tally
from benchmarks.matrix.server import CounterPoller, SimServer
from benchmarks.matrix.window import run_figures
from benchmarks.procs import ProcSampler, descendants
from matrixhpc.files import read_json

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MATRIXHPC_CONFIG = HERE / "coral_fixed.yaml"
MATRIX_CONFIG = HERE / "matrix_coral.yaml"
MATRIX_VENV = HERE / ".venv"


@dataclass(frozen=True, slots=True)
class Workload:
    """What both frameworks run: the same rows, turns, tokens per turn and admission cap."""

    tasks: int = 300
    inflight: int = 128
    turns: int = 6
    max_tokens: int = 256
    workers: int = 2  # matrixhpc worker processes (Matrix: one actor per role, as shipped)

    @property
    def tokens(self) -> int:
        """Output tokens the workload generates: tasks x turns x max_tokens."""
        return self.tasks * self.turns * self.max_tokens


def matrixhpc_overrides(w: Workload, url: str, rows: Path) -> list[str]:
    return [
        f"services.llm.url={url}",
        f"dataset.path={rows}",
        f"routing.stop_when=state.turns >= {w.turns}",
        f"roles.teacher.params.max_tokens={w.max_tokens}",
        f"roles.student.params.max_tokens={w.max_tokens}",
        f"workers.count={w.workers}",
        f"workers.window={-(-w.inflight // w.workers)}",
    ]


def matrix_overrides(w: Workload, url: str, rows: Path, output: Path) -> list[str]:
    return [
        f"resources.llm.base_url={url}",
        f"dataset.data_files={rows}",
        f"output.path={output}",
        f"max_concurrent_tasks={w.inflight}",
        f"orchestrator.max_turns={w.turns}",
        f"resources.llm.sampling_params.max_tokens={w.max_tokens}",
    ]


def _env(**extra: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def launch_matrixhpc(w: Workload, url: str, rows: Path, run_dir: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "matrixhpc", "run", str(MATRIXHPC_CONFIG), "--local",
            "--run-dir", str(run_dir), *matrixhpc_overrides(w, url, rows)]  # fmt: skip


def launch_matrix(w: Workload, url: str, rows: Path, run_dir: Path) -> list[str]:
    output, timings = run_dir / "output.jsonl", run_dir / "timings.json"
    return [str(MATRIX_VENV / "bin" / "python"), str(HERE / "run_matrix.py"), str(MATRIX_CONFIG),
            *matrix_overrides(w, url, rows, output), "--timings", str(timings)]  # fmt: skip


def _stop_tree(server_pid: int, grace: float) -> int:
    """Wait up to ``grace`` s for the run's leftover processes, then SIGKILL them by pid
    (all are this process's descendants, i.e. started here); returns how many were left."""
    deadline = time.monotonic() + grace
    while (left := [p for p in descendants(os.getpid()) if p != server_pid]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(left)


def measure(
    server: SimServer, argv: list[str], log: Path, timeout: float, env: dict[str, str]
) -> dict[str, Any]:
    """Run ``argv`` to its end (killed after ``timeout`` s) against ``server``; the
    server-side and process figures. Processes of the run still alive 30 s after it exited
    are killed and counted (``leftover_processes``), so the next run starts alone."""
    server.wait_idle()
    sampler = ProcSampler(interval=0.25, classify=lambda pid: pid == server.pid).start()
    poller = CounterPoller(server).start()
    launched = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    finally:
        exited = time.time()
        leftover = _stop_tree(server.pid, 30.0)
        samples = poller.stop()
        sampler.stop()
    figures = run_figures(samples, launched)
    cpu = sampler.cpu_seconds()["framework_cpu_s"]
    active_cpu = sampler.framework_cpu_since(figures.get("window_start", launched))
    peak = sampler.peak()
    return {
        **figures,
        "exit_code": code,
        "wall_s": exited - launched,
        "cpu_s": cpu,
        "cpu_s_active": active_cpu,
        "cpu_ms_per_call": 1000 * active_cpu / figures["requests"] if figures["requests"] else 0.0,
        "rss_peak_mb": peak["framework_mb"],
        "processes": max(0, peak["processes"] - 1),  # the server is a descendant too
        "leftover_processes": leftover,
        "server_samples": len(samples),
    }


def run_matrixhpc(server: SimServer, w: Workload, rows: Path, run_dir: Path,
                  timeout: float) -> dict[str, Any]:  # fmt: skip
    argv = launch_matrixhpc(w, server.url, rows, run_dir)
    result = measure(server, argv, run_dir.with_suffix(".log"), timeout, _env())
    records = read_jsonl(sorted((run_dir / "output").glob("part-*.jsonl")))
    return {**result, **tally(records, matrixhpc_turns, w.turns, w.max_tokens)}


def run_matrix(server: SimServer, w: Workload, rows: Path, run_dir: Path,
               timeout: float) -> dict[str, Any]:  # fmt: skip
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = launch_matrix(w, server.url, rows, run_dir)
    env = _env(
        RAY_USAGE_STATS_ENABLED="0",
        HF_DATASETS_OFFLINE="1",
        HF_HUB_OFFLINE="1",
        MATRIX_DIR=str(run_dir / "matrix-home"),
    )  # its logs, not in ~/.matrix
    result = measure(server, argv, run_dir.with_suffix(".log"), timeout, env)
    output = run_dir / "output.jsonl"
    records = read_jsonl([output] if output.exists() else [])
    timings = read_json(run_dir / "timings.json") or {}
    if "ray_ready" in timings:  # how much of the start-up is Ray's local cluster
        result["ray_start_s"] = timings["ray_ready"] - timings["started"]
    return {**result, **tally(records, matrix_turns, w.turns, w.max_tokens)}
