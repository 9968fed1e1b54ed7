"""The Launcher protocol's backends: chosen by name or by run.json, and what ``stop`` and
``status`` get from each without a launch (real processes; no scheduler needed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from matrixhpc.config import load_config
from matrixhpc.launch.backends import UnknownLauncher, default_kind, launcher_for, launcher_of
from matrixhpc.launch.launcher import Stopped
from matrixhpc.launch.local import LocalBackend
from matrixhpc.launch.process import identity
from matrixhpc.launch.slurm_run import SlurmBackend
from matrixhpc.rundir import RunDir


def test_backends_by_name_and_by_run_json() -> None:
    assert isinstance(launcher_for("local"), LocalBackend)
    assert isinstance(launcher_for("slurm"), SlurmBackend)
    assert isinstance(launcher_of({"launcher": "slurm", "state": "running"}), SlurmBackend)
    assert isinstance(launcher_of({"launcher": "local"}), LocalBackend)
    assert isinstance(launcher_of({}), LocalBackend)  # as every command took it before


def test_an_unknown_launcher_is_named() -> None:
    with pytest.raises(UnknownLauncher, match=r"^launcher 'ray' is not one of local, slurm$"):
        launcher_for("ray")
    with pytest.raises(UnknownLauncher, match=r"^run\.json: launcher 'ray' is not one"):
        launcher_of({"launcher": "ray"})


def test_slurm_is_the_default_where_sbatch_is_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert default_kind() == "local"
    sbatch = tmp_path / "sbatch"
    sbatch.write_text("#!/bin/sh\n")
    sbatch.chmod(0o755)
    assert default_kind() == "slurm"


def test_local_stop_signals_the_recorded_processes_still_ours(tmp_path: Path) -> None:
    ours = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    try:
        pids = {
            "host": socket.gethostname(),
            "children": [{"name": "w000", "kind": "worker", **identity(ours.pid)}],
        }
        (tmp_path / "pids.json").write_text(json.dumps(pids))
        stopped = launcher_for("local").stop(RunDir(tmp_path), timeout=5)
        assert stopped == Stopped("stopped 1 process(es)", [])
        assert ours.wait(5) == -signal.SIGTERM
    finally:
        ours.kill()
        ours.wait()


def test_local_stop_notes_another_hosts_processes(tmp_path: Path) -> None:
    pids = {"host": "elsewhere.invalid", "children": [{"name": "w000", "pid": os.getpid()}]}
    (tmp_path / "pids.json").write_text(json.dumps(pids))
    stopped = launcher_for("local").stop(RunDir(tmp_path), timeout=5)
    assert stopped.what == "stopped 0 process(es)"
    assert stopped.notes == [
        f"w000 (pid {os.getpid()}) not signalled: it runs on host elsewhere.invalid, "
        f"not this one ({socket.gethostname()})"
    ]
    assert launcher_for("local").job_states(RunDir(tmp_path)) == []


def test_a_slurm_run_without_jobs_has_nothing_to_cancel_or_show(tmp_path: Path) -> None:
    """Neither asks the scheduler about no job at all (so this needs no Slurm)."""
    data = tmp_path / "rows.jsonl"
    data.write_text('{"i": 1}\n')
    cfg = {
        "name": "jobs",
        "services": {},
        "roles": {"work": {"kind": "python", "function": "steps:step"}},
        "routing": {"kind": "sequential", "order": ["work"]},
        "dataset": {"path": str(data)},
    }
    (tmp_path / "jobs.yaml").write_text(yaml.safe_dump(cfg))
    rd = RunDir(tmp_path / "run")
    rd.create(load_config(tmp_path / "jobs.yaml"))
    backend = launcher_for("slurm")
    assert backend.stop(rd, timeout=5) == Stopped("cancelled 0 job(s)")
    assert backend.job_states(rd) == []
