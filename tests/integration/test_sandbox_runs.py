"""Sandboxed workflows end to end: real workers, real bubblewrap (and Apptainer when
installed), the simulated engine; kill -9 mid-task then `matrixhpc resume`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, done_count, matrixhpc, records, start_run, wait_for, write_dataset

from matrixhpc.launch.process import pid_alive

sys.path.insert(0, str(REPO / "tests"))
from sandbox_fixtures import IMAGE, apptainer_missing

from matrixhpc.sandbox.apptainer import find_apptainer
from matrixhpc.sandbox.factory import UID_BASE

BACKENDS = [
    pytest.param(
        "bubblewrap",
        marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap missing"),
    ),
    pytest.param(
        "apptainer",
        marks=pytest.mark.skipif(apptainer_missing() is not None, reason=str(apptainer_missing())),
    ),
]
STEPS = 6


def _backend_args(backend: str) -> list[str]:
    if backend == "apptainer":
        return ["sandboxes.tools.backend=apptainer", f"sandboxes.tools.image={IMAGE}"]
    return []


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_code_workflow_on_the_simulated_engine(tmp_path: Path, backend: str) -> None:
    """configs/code.yaml as the README runs it: every tests step really ran in a sandbox
    (the simulated engine writes no code, so the tests say main.py is missing)."""
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "code.yaml"),
        "--local",
        "--engine",
        "simulated",
        "--run-dir",
        str(run_dir),
        "dataset.limit=4",
        "services.llm.simulated.time_scale=0.01",
        *_backend_args(backend),
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert sorted(r["id"] for r in recs) == [f"r{i}-t0" for i in range(4)]
    for rec in recs:
        tests = [t for t in rec["history"] if t["role"] == "tests"]
        assert len(tests) == 4  # the first try and three revisions
        for turn in tests:
            assert turn["data"]["exit_code"] == 1
            assert "No module named 'main'" in turn["data"]["stderr"]
        assert rec["state"]["revisions"] == 3
    status = matrixhpc("status", str(run_dir))
    assert f"{backend}:" in status.stdout
    assert "limit hits" in status.stdout


def _counting_config(tmp: Path, rows: int, backend: str) -> Path:
    """Six sandbox steps per task, each appending to a file the task keeps in its sandbox
    and printing its line count: a sandbox rebuilt without the task's earlier steps would
    count from 1 again."""
    data = write_dataset(tmp / "rows.jsonl", [{"n": i} for i in range(rows)])
    cfg = {
        "name": "count",
        "sandboxes": {
            "tools": {"backend": "bubblewrap", "pool": 4, "limits": {"wall_s": 20, "pids": 256}}
        },
        "roles": {
            "step": {
                "kind": "sandbox",
                "sandbox": "tools",
                "command": "echo {{ task.hop }} >> log.txt; wc -l < log.txt; sleep 0.3",
            }
        },
        "routing": {"kind": "sequential", "order": ["step"] * STEPS},
        "dataset": {"path": str(data)},
        "workers": {"count": 2, "restarts": 5, "lease": 600},
    }
    if backend == "apptainer":
        cfg["sandboxes"]["tools"].update(backend="apptainer", image=str(IMAGE))  # type: ignore[index]
    path = tmp / "count.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _live_sandboxes(run_dir: Path, backend: str) -> list[str]:
    """What of the run's sandboxes still runs on this node."""
    if backend == "apptainer":
        homes = Path("/tmp").glob("matrixhpc-sandbox-*/*/apptainer-home")
        out: list[str] = []
        for home in homes:
            listed = subprocess.run(
                [str(find_apptainer()), "instance", "list", "--json"],
                capture_output=True,
                text=True,
                env={**os.environ, "HOME": str(home)},
                check=True,
            )
            out += [i["instance"] for i in json.loads(listed.stdout)["instances"]]
        return out
    if os.geteuid() != 0:
        return []  # bwrap processes end with their exec (--die-with-parent, a pid namespace)
    return [  # processes of the slots' own uids
        p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _uid(p) >= UID_BASE
    ]


def _uid(proc: Path) -> int:
    try:
        return proc.stat().st_uid
    except OSError:
        return -1


@pytest.mark.parametrize("backend", BACKENDS)
def test_kill_9_mid_task_then_resume_rebuilds_the_sandbox_by_replay(
    tmp_path: Path, backend: str
) -> None:
    rows = 10
    run_dir = tmp_path / "run"
    launcher = start_run(_counting_config(tmp_path, rows, backend), run_dir)
    wait_for(lambda: (run_dir / "pids.json").exists(), 60)
    wait_for(lambda: done_count(run_dir) >= 1, 120)
    pids = json.loads((run_dir / "pids.json").read_text())
    os.kill(pids["children"][0]["pid"], signal.SIGKILL)  # mid-task: the launcher restarts it
    wait_for(lambda: done_count(run_dir) >= 3, 120)
    pids = json.loads((run_dir / "pids.json").read_text())  # then everything at once
    for pid in [pids["launcher"], *(c["pid"] for c in pids["children"])]:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    launcher.wait(30)
    wait_for(lambda: not any(pid_alive(c["pid"]) for c in pids["children"]), 30)
    resumed = matrixhpc("resume", str(run_dir), timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    recs = records(run_dir)
    assert sorted(r["id"] for r in recs) == sorted(f"r{i}-t0" for i in range(rows))  # once each
    replayed = 0
    for rec in recs:
        steps: list[dict[str, Any]] = [t for t in rec["history"] if t["role"] == "step"]
        assert rec["status"] == "ok", rec["error"]
        # the sandbox came back with the task's earlier steps each time: 1, 2, ..., 6
        assert [t["data"]["stdout"] for t in steps] == [f"{i}\n" for i in range(1, STEPS + 1)]
        replayed += sum(1 for t in steps if t["data"]["replayed"])
    # Whether a task was caught mid-way (and its sandbox rebuilt by replay) depends on when
    # the kill lands: with bubblewrap, fast execs can take every held task past its last
    # sandbox step first (seen in CI). The sequences above are checked either way; replay
    # itself is asserted by the Apptainer case and the affinity test.
    if backend == "apptainer":
        assert replayed >= 1, "no task was resumed mid-way: killed too late to tell"
    # nothing of the killed workers' sandboxes is left running (the last execs of a
    # finished run may take a moment to be reaped)
    wait_for(lambda: _live_sandboxes(run_dir, backend) == [], 15)
