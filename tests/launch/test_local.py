"""The local launcher's judgement of its children (which exits are failures), what a resume
clears before it starts anything, and its warning about a run that makes no progress."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from matrixhpc.config import load_config
from matrixhpc.launch import local
from matrixhpc.launch.completion import run_finished
from matrixhpc.launch.local import LaunchError, LocalLauncher, prepare_resume
from matrixhpc.launch.process import Child, identity, spawn
from matrixhpc.registry import Registry
from matrixhpc.rundir import RunDir

CONFIG = Path(__file__).parents[2] / "configs" / "hello.yaml"


def _launcher(tmp_path: Path, code: int) -> LocalLauncher:
    cfg = load_config(CONFIG, ["services.llm.replicas=1", "workers.count=2"])
    rd = RunDir(tmp_path / "run")
    rd.create(cfg)
    launcher = LocalLauncher(rd, cfg)
    proc = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    proc.wait()
    launcher.children.append(Child("llm-0", "service", proc, tmp_path / "llm-0.log", "llm"))
    return launcher


def _worker_entry(launcher: LocalLauncher, name: str, state: str) -> None:
    """What a worker leaves when it finished and then exited with the run."""
    launcher.registry.mark("finished", name)
    if state == "exited":
        launcher.registry.mark("exited", name)
    else:
        launcher.registry.register("workers", name, {"state": state})


def test_the_last_replica_gone_mid_run_is_a_failure(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path, 0)
    _worker_entry(launcher, "w000", "exited")  # one of two workers done: the run is not
    with pytest.raises(LaunchError, match="every replica of service 'llm'"):
        launcher._check_services()


def test_a_replica_ending_itself_after_the_run_finished_is_not(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path, 0)
    _worker_entry(launcher, "w000", "exited")
    _worker_entry(launcher, "w001", "exited")
    launcher._check_services()


def test_a_crashed_replica_is_a_failure_even_after_the_run_finished(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path, 3)
    _worker_entry(launcher, "w000", "exited")
    _worker_entry(launcher, "w001", "exited")
    with pytest.raises(LaunchError):
        launcher._check_services()


def test_a_resume_clears_the_last_incarnations_done_markers(tmp_path: Path) -> None:
    """Left in place, the finished workers' permanent entries would tell the new replicas
    the run is over: they would exit 0 at once and the launch would fail."""
    launcher = _launcher(tmp_path, 0)
    _worker_entry(launcher, "w000", "exited")
    _worker_entry(launcher, "w001", "exited")
    assert run_finished(launcher.registry, 2)
    prepare_resume(launcher.rd)
    assert not run_finished(Registry(launcher.rd.registry), 2)
    assert not list((launcher.rd.registry / "workers").glob("*.json"))
    assert not list((launcher.rd.registry / "finished").iterdir())
    assert not list((launcher.rd.registry / "exited").iterdir())


def test_a_resume_stops_only_leftovers_that_are_still_ours(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    leftover = subprocess.Popen(["sleep", "30"])
    stranger = subprocess.Popen(["sleep", "30"])  # has the PID pids.json names, not the start
    try:
        other = {**identity(stranger.pid), "start": (identity(stranger.pid)["start"] or 0) - 1}
        children = [
            {"name": "llm-0", "kind": "service", **identity(leftover.pid)},
            {"name": "w000", "kind": "worker", **other},
        ]
        rd.root.mkdir()
        rd.pids.write_text(json.dumps({"host": socket.gethostname(), "children": children}))
        prepare_resume(rd)
        assert leftover.wait(5) == -signal.SIGTERM
        assert stranger.poll() is None
    finally:
        for p in (leftover, stranger):
            p.kill()
            p.wait()


def test_the_launcher_warns_about_a_run_without_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(local, "stall_warning", lambda cfg: 0.1)
    cfg = load_config(CONFIG, ["workers.count=1"])
    rd = RunDir(tmp_path / "run")
    rd.create(cfg)
    (rd.status / "w000.json").write_text(json.dumps({"worker": "w000", "done": 3}))
    launcher = LocalLauncher(rd, cfg)
    # a worker that makes no progress, then ends (the warning must not stop it first)
    worker = spawn("w000", "worker", ["sleep", "1.5"], tmp_path / "w000.log", group="0")
    launcher.children.append(worker)
    launcher.watch(10)
    assert worker.exited() == 0
    err = capsys.readouterr().err
    assert "[matrixhpc] warning: no progress for" in err
    assert "3/10 tasks written" in err
    assert "w000: no live registry entry" in err


def test_a_second_ctrl_c_does_not_cut_the_launchers_stop_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launcher = _launcher(tmp_path, 0)
    stopped = []

    def impatient_stop(children: list[Child]) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again while the children are stopped
        stopped.append(children)

    monkeypatch.setattr(local, "stop", impatient_stop)
    previous = signal.signal(signal.SIGINT, local._on_signal)  # as run() installs it
    try:
        launcher._shutdown("stopped")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped == [launcher.children]
    assert "SIGINT: already stopping" in capsys.readouterr().err
    assert json.loads((launcher.rd.root / "run.json").read_text())["state"] == "stopped"
