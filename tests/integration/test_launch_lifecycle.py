"""The launcher's own lifecycle, end to end: a closed pipe never orphans the run's processes,
and a resume is not ended by the markers its previous incarnation left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import assert_complete, dialogue_config, matrixhpc, records

from matrixhpc.launch.process import pid_alive

ROWS = "dataset.limit=20"


def _pids(run_dir: Path) -> list[int]:
    pids = json.loads((run_dir / "pids.json").read_text())
    return [pids["launcher"], *(c["pid"] for c in pids["children"])]


def test_a_closed_pipe_neither_kills_the_run_nor_orphans_it(tmp_path: Path, dataset: Path) -> None:
    """``matrixhpc run ... 2>&1 | head -1``: the run goes on to its end, its output moves
    to RUN_DIR/logs/launcher.log, and it stops its servers and workers as always."""
    run_dir = tmp_path / "run"
    cfg = dialogue_config(tmp_path, dataset, 0.002)
    argv = [sys.executable, "-m", "matrixhpc", "run", str(cfg), "--local", ROWS]
    proc = subprocess.Popen(
        [*argv, "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("[matrixhpc] run directory:")
    proc.stdout.close()  # head has what it wanted
    assert proc.wait(300) == 0
    assert json.loads((run_dir / "run.json").read_text())["state"] == "finished"
    assert_complete(records(run_dir), 20)
    assert not [pid for pid in _pids(run_dir) if pid_alive(pid)]
    log = (run_dir / "logs" / "launcher.log").read_text()
    assert "the terminal or pipe closed" in log
    assert "[matrixhpc] 20/20 tasks" in log


def test_resume_after_every_worker_finished(tmp_path: Path, dataset: Path) -> None:
    """The launcher died before it recorded the end (kill -9 at the last moment): every
    worker's "done" marker is there, the run is not marked finished. Before the fix the
    resumed replicas saw the old markers, exited 0 at once, and the resume failed."""
    run_dir = tmp_path / "run"
    cfg = dialogue_config(tmp_path, dataset, 0.002)
    first = matrixhpc("run", str(cfg), "--local", ROWS, "--run-dir", str(run_dir))
    assert first.returncode == 0, first.stderr
    run = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**run, "state": "running"}))
    resumed = matrixhpc("resume", str(run_dir), timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run_dir / "run.json").read_text())["state"] == "finished"
    assert_complete(records(run_dir), 20)
