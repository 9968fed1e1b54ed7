"""The checks before a resume: a launcher still running (told by host, PID and start time,
against real processes), a run launched on another host, and a config or input changed
since the run started; each read from a real run.json."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixhpc.config import RunConfig, load_config
from matrixhpc.files import read_json
from matrixhpc.launch.process import start_time
from matrixhpc.launch.resume_checks import change_problem, changes, launcher_problem
from matrixhpc.launch.runinfo import Fingerprints, adopt_config, record_run
from matrixhpc.rundir import RunDir

HERE = socket.gethostname()
ELSEWHERE = "elsewhere.invalid"


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process of this host, standing for a launcher that still runs."""
    proc = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def gone() -> int:
    """The PID of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _run_json(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """A local run's run.json with ``fields``, written and read back as resume reads it."""
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"launcher": "local", "state": "stopped", **fields}))
    run = read_json(path)
    assert isinstance(run, dict)
    return run


def _launcher(pid: int, start: int | None, host: str | None = HERE) -> dict[str, Any]:
    return {"launcher_pid": pid, "launcher_start": start, "launcher_host": host}


def _start(proc: subprocess.Popen[bytes]) -> int:
    start = start_time(proc.pid)
    assert start is not None
    return start


def test_a_launcher_still_running_here_refuses_even_with_force(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    run = _run_json(tmp_path, **_launcher(sleeper.pid, _start(sleeper)))
    expected = f"{tmp_path} is running (launcher pid {sleeper.pid}); stop it first"
    assert launcher_problem(run, tmp_path, force=False) == expected
    assert launcher_problem(run, tmp_path, force=True) == expected


def test_a_reused_pid_is_not_the_launcher(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    run = _run_json(tmp_path, **_launcher(sleeper.pid, _start(sleeper) + 1))
    assert launcher_problem(run, tmp_path, force=False) is None


def test_a_launcher_that_is_gone_lets_the_resume_go(tmp_path: Path, gone: int) -> None:
    run = _run_json(tmp_path, **_launcher(gone, 12345))
    assert launcher_problem(run, tmp_path, force=False) is None


def test_without_a_start_time_a_live_pid_is_all_there_is(
    tmp_path: Path, sleeper: subprocess.Popen[bytes], gone: int
) -> None:
    """A run.json from before start times were recorded: the PID alone decides, and
    the host (not recorded either) is not checked."""
    running = _run_json(tmp_path, **_launcher(sleeper.pid, None, None))
    assert "is running" in str(launcher_problem(running, tmp_path, force=False))
    ended = _run_json(tmp_path, **_launcher(gone, None, ELSEWHERE))
    assert launcher_problem(ended, tmp_path, force=False) is None


def test_a_run_launched_on_another_host_needs_force(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Its PID means nothing here, even when a process of this host has it."""
    run = _run_json(tmp_path, **_launcher(sleeper.pid, _start(sleeper), ELSEWHERE))
    problem = launcher_problem(run, tmp_path, force=False)
    assert problem is not None
    assert f"was launched on host {ELSEWHERE} (launcher pid {sleeper.pid})" in problem
    assert f"resume it on {ELSEWHERE}, or use --force" in problem
    assert launcher_problem(run, tmp_path, force=True) is None


def test_slurm_runs_and_runs_without_a_launcher_pid_are_not_checked(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """A Slurm run's jobs are the run (its resume resubmits only what left the queue)."""
    slurm = _run_json(tmp_path, **_launcher(sleeper.pid, _start(sleeper)), launcher="slurm")
    assert launcher_problem(slurm, tmp_path, force=False) is None
    assert launcher_problem(_run_json(tmp_path), tmp_path, force=False) is None


# ---------------------------------------------------------------- config and input


def _config(tmp_path: Path, *overrides: str) -> RunConfig:
    data = tmp_path / "rows.jsonl"
    if not data.exists():
        data.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(3)))
    cfg = {
        "name": "checks",
        "services": {},
        "roles": {"work": {"kind": "python", "function": "steps:step"}},
        "routing": {"kind": "sequential", "order": ["work"]},
        "dataset": {"path": str(data)},
        "workers": {"count": 1},
    }
    path = tmp_path / "checks.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path, list(overrides))


@pytest.fixture
def started(tmp_path: Path) -> tuple[RunDir, dict[str, Any]]:
    """A run directory and the run.json its launch recorded."""
    cfg = _config(tmp_path)
    rd = RunDir(tmp_path / "run")
    rd.create(cfg)
    return rd, record_run(rd, cfg, "local", state="stopped")


def test_nothing_changed(tmp_path: Path, started: tuple[RunDir, dict[str, Any]]) -> None:
    cfg = _config(tmp_path)
    found = changes(started[1], Fingerprints.of(cfg), cfg.dataset.path)
    assert found == []
    assert change_problem(found, force=False) is None


def test_a_changed_input_is_refused_unless_forced(
    tmp_path: Path, started: tuple[RunDir, dict[str, Any]]
) -> None:
    with (tmp_path / "rows.jsonl").open("a") as fh:
        fh.write(json.dumps({"i": 99}) + "\n")
    cfg = _config(tmp_path)
    found = changes(started[1], Fingerprints.of(cfg), cfg.dataset.path)
    assert found == [f"the input ({cfg.dataset.path})"]
    assert change_problem(found, force=False) == (
        f"refusing to resume: the input ({cfg.dataset.path}) changed since the run started; "
        "records written so far came from the old one. Use --force to resume anyway."
    )
    assert change_problem(found, force=True) is None


def test_a_changed_config_and_input_are_both_named(
    tmp_path: Path, started: tuple[RunDir, dict[str, Any]]
) -> None:
    (tmp_path / "rows.jsonl").write_text(json.dumps({"i": 7}) + "\n")
    cfg = _config(tmp_path, "workers.window=11")
    found = changes(started[1], Fingerprints.of(cfg), cfg.dataset.path)
    assert found == ["the config", f"the input ({cfg.dataset.path})"]
    problem = change_problem(found, force=False)
    assert problem is not None
    assert problem.startswith("refusing to resume: the config and the input (")
    assert "--force" in problem


def test_an_adopted_config_is_what_the_next_resume_compares_against(
    tmp_path: Path, started: tuple[RunDir, dict[str, Any]]
) -> None:
    rd, run = started
    cfg = _config(tmp_path, "workers.window=11")
    now = Fingerprints.of(cfg)
    assert changes(run, now, cfg.dataset.path) == ["the config"]
    adopt_config(rd, cfg, now)
    after = read_json(rd.run_info)
    assert after is not None
    assert changes(after, now, cfg.dataset.path) == []
    assert after["state"] == "stopped"  # the rest of run.json is kept
    assert rd.load().workers.window == 11
