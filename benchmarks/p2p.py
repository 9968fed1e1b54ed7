"""The design under test: matrixhpc's peer-to-peer runtime, through the command a user runs.

    python -m matrixhpc run <generated config> --local --run-dir RD

from the repository root (so the workers can import ``benchmarks.dialogue``). The launcher
starts the simulated replicas from the config's ``services.llm`` and ``workers.count``
worker processes, each admitting ``workers.window`` tasks of its slice. While it runs,
:func:`watch` keeps each worker's first status snapshot: CPU seconds and steps are
measured from there (imports and start-up are not per-hop costs).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from matrixhpc.files import read_json

REPO = Path(__file__).resolve().parents[1]


def launch(config: Path, run_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "matrixhpc", "run", str(config), "--local",
            "--run-dir", str(run_dir)]  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        return subprocess.Popen(argv, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)


def watch(
    proc: subprocess.Popen[bytes], run_dir: Path, timeout: float, poll: float = 0.25
) -> dict[str, dict[str, Any]]:
    """Wait for the run to end; returns each worker's first status snapshot."""
    first: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            for path in (run_dir / "status").glob("w*.json"):
                if path.stem not in first and (status := read_json(path)) is not None:
                    first[path.stem] = status
            if time.monotonic() > deadline:
                raise TimeoutError(f"p2p run did not finish in {timeout:.0f}s")
            time.sleep(poll)
    finally:
        if proc.poll() is None:  # the launcher stops its workers and engines on SIGTERM
            proc.terminate()
            proc.wait(60)
    if proc.returncode != 0 and not complete(run_dir):
        raise RuntimeError(f"matrixhpc run exited with {proc.returncode}; see {run_dir}/logs")
    return first


def complete(run_dir: Path) -> bool:
    """Every task written (the launcher's own count in run.json).

    ``matrixhpc run`` can exit 1 *after* a complete run: the replicas stop themselves once
    the registry says every worker has exited, and the launcher, polling, may see the
    replicas gone before worker 0 (still writing the manifest) has exited, and reports
    "every replica of service 'llm' has exited". The measurement is then still valid; the
    exit code is kept in the results (``launcher_exit_code``).
    """
    run = read_json(run_dir / "run.json") or {}
    return bool(run.get("total_tasks")) and run.get("records") == run.get("total_tasks")


def statuses(run_dir: Path, first: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Final worker statuses, with ``cpu_s_start``/``steps_start`` from the first snapshot."""
    out = []
    for path in sorted((run_dir / "status").glob("w*.json")):
        final = read_json(path) or {}
        start = first.get(path.stem, {})
        final["cpu_s_start"] = start.get("cpu_s", 0.0)
        final["steps_start"] = start.get("steps", 0)
        final["rss_mb_start"] = start.get("rss_mb", 0.0)
        out.append(final)
    return out
