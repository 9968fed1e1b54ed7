"""The local launcher's judgement of its children: which exits are failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from matrixhpc.config import load_config
from matrixhpc.launch.local import LaunchError, LocalLauncher
from matrixhpc.launch.process import Child
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
    launcher.registry.register("workers", name, {"state": state, "origin_done": True})


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
