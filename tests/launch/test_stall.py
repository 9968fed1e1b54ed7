"""A run that stops making progress is noticed and described, and never stopped for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.launch.progress import Progress
from matrixhpc.launch.stall import StallWatch
from matrixhpc.registry import Registry
from matrixhpc.status import read_status


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _worker(run_dir: Path, name: str, done: int, **extra: Any) -> None:
    status = {"worker": name, "done": done, "held": 4, "in_flight": 4, "pending_acks": 2}
    (run_dir / "status" / f"{name}.json").write_text(json.dumps({**status, **extra}))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "status").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"total_tasks": 100, "state": "running"}))
    _worker(tmp_path, "w000", 10)
    _worker(tmp_path, "w001", 20, journal={"error": "[Errno 28] No space left: /j/w001"})
    Registry(tmp_path / "registry").register("workers", "w000", {"state": "running"})
    return tmp_path


def test_no_warning_while_tasks_get_written(run_dir: Path) -> None:
    clock = Clock()
    watch = StallWatch(60, clock)
    for done in range(10, 20):
        _worker(run_dir, "w000", done)
        clock.now += 59
        assert watch.observe(read_status(run_dir)) is None


def test_a_stalled_run_is_described_then_repeated_not_stopped(run_dir: Path) -> None:
    clock = Clock()
    watch = StallWatch(60, clock)
    assert watch.observe(read_status(run_dir)) is None
    clock.now += 59
    assert watch.observe(read_status(run_dir)) is None
    clock.now += 2
    warning = watch.observe(read_status(run_dir))
    assert warning is not None
    lines = warning.splitlines()
    assert lines[0].startswith("no progress for 1m01s: 30/100 tasks written")
    w000 = next(line for line in lines if "w000:" in line)
    assert "running on" in w000
    assert "held=4 in_flight=4" in w000
    assert "pending_acks=2" in w000
    w001 = next(line for line in lines if "w001:" in line)
    assert "no live registry entry" in w001
    assert "  journal error on w001: [Errno 28] No space left: /j/w001" in lines
    clock.now += 30
    assert watch.observe(read_status(run_dir)) is None  # not on every poll
    clock.now += 30
    assert watch.observe(read_status(run_dir)) is not None  # but again after a while
    _worker(run_dir, "w000", 11)  # progress: quiet again
    assert watch.observe(read_status(run_dir)) is None


def test_zero_turns_the_warning_off(run_dir: Path) -> None:
    clock = Clock()
    watch = StallWatch(0, clock)
    watch.observe(read_status(run_dir))
    clock.now += 1e6
    assert watch.observe(read_status(run_dir)) is None


def test_the_progress_output_carries_the_warning(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    progress = Progress(run_dir, 100, stall_after=30, clock=clock)
    progress.update()
    clock.now += 31
    progress.update()
    err = capsys.readouterr().err
    assert "[matrixhpc] 30/100 tasks" in err
    assert "[matrixhpc] warning: no progress for 31s" in err
    assert "journal error on w001" in err
