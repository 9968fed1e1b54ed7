"""``matrixhpc status`` from the workers' status files: totals, roles, the clients' replicas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.status import read_status, render


def _worker(name: str, done: int, replicas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "worker": name,
        "group": "all",
        "done": done,
        "ok": done,
        "roles": {"student": {"steps": done * 2, "tokens_out": done * 10}},
        "llm": {"llm": {"requests": 9, "replicas": replicas}},
    }


def test_workers_and_their_clients_are_merged(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    (tmp_path / "run.json").write_text(json.dumps({"total_tasks": 100, "state": "running"}))
    workers = [
        _worker(
            "w000", 10, {"r0": {"requests": 5, "outstanding": 12, "inflight": 8, "external": 7}}
        ),
        _worker(
            "w001",
            30,
            {
                "r0": {"requests": 4, "failures": 1, "outstanding": 1, "inflight": 1},
                "r1": {"requests": 6, "cooldown": 4.5},
            },
        ),
    ]
    for w in workers:
        (tmp_path / "status" / f"{w['worker']}.json").write_text(json.dumps(w))
    (tmp_path / "status" / "w002.json").write_text("{torn")  # mid-write: skipped
    status = read_status(tmp_path)
    assert status.totals["done"] == 40
    assert status.expected == 100
    assert status.roles["student"]["steps"] == 80
    r0, r1 = status.clients["llm"]["r0"], status.clients["llm"]["r1"]
    assert (r0["requests"], r0["failures"], r0["external"]) == (9, 1, 7)
    # sent and not back (at most max_concurrency per client), apart from what waits for a slot
    assert (r0["in_flight"], r0["waiting"]) == (9, 4)
    assert r1["cooldown"] == 4.5
    assert r1["requests"] == 6
    text = render(status)
    assert "tasks 40/100" in text
    assert any(line.split()[:3] == ["r0", "9", "1"] for line in text.splitlines())


def test_a_failing_journal_is_named(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    error = "[Errno 28] No space left on device: '/scratch/run/journal/w001/seg-3.log'"
    for name, journal in (("w000", {"records": 5}), ("w001", {"records": 5, "error": error})):
        worker = {**_worker(name, 1, {}), "journal": journal}
        (tmp_path / "status" / f"{name}.json").write_text(json.dumps(worker))
    lines = render(read_status(tmp_path)).splitlines()
    assert [line for line in lines if "journal error" in line] == [
        f"journal error on w001: {error}"
    ]


def test_faults_waiting_tasks_and_recovery_counters_are_shown(tmp_path: Path) -> None:
    (tmp_path / "status").mkdir()
    workers = {
        "w000": {"fault": "ServiceUnavailable: service 'llm' unavailable", "reissued": 2},
        "w001": {"waiting_for_role": {"judge": 3}, "redriven": 1, "resent": 4},
        "w002": {"waiting_for_role": {"judge": 2, "student": 0}, "dropped_frames": 9},
    }
    for name, extra in workers.items():
        worker = {**_worker(name, 1, {}), **extra}
        (tmp_path / "status" / f"{name}.json").write_text(json.dumps(worker))
    lines = render(read_status(tmp_path)).splitlines()
    assert "w000 stopped (resumable): ServiceUnavailable: service 'llm' unavailable" in lines
    assert "5 task(s) waiting for a live worker hosting 'judge'" in lines
    assert not any("hosting 'student'" in line for line in lines)
    assert "liveness audit re-drove 1 stranded task(s): see logs/" in lines
    assert any(
        line.startswith("recovery: reissued=2 resent=4") and "dropped_frames=9" in line
        for line in lines
    )


def _run(tmp_path: Path, run: dict[str, Any], workers: list[dict[str, Any]]) -> Any:
    (tmp_path / "status").mkdir(exist_ok=True)
    (tmp_path / "run.json").write_text(json.dumps(run))
    for i, w in enumerate(workers):
        (tmp_path / "status" / f"w{i:03d}.json").write_text(json.dumps(w))
    return read_status(tmp_path)


def test_a_finished_run_shows_its_mean_rate_not_its_last_window(tmp_path: Path) -> None:
    run = {"total_tasks": 60, "state": "finished", "launched": 1000.0, "finished": 2500.0}
    worker = {"done": 60, "written_here": 60, "turns_written": 360, "tasks_per_s": 0.4}
    status = _run(tmp_path, run, [worker])
    assert status.mean_task_rate() == pytest.approx(60 / 1500)
    assert status.eta() == 0
    assert "rate 0.04 tasks/s (mean since launch)" in render(status)


def test_the_eta_counts_turns_so_a_run_admitted_at_once_is_not_shown_stuck(
    tmp_path: Path,
) -> None:
    """60 six-turn dialogues admitted at once: two written after 100 s, the other 58 at
    turn 4 or 5. Counted in tasks the ETA would be 2,900 s; in turns it is ~20 s."""
    run = {"total_tasks": 60, "state": "running", "launched": 0.0}
    held = 58 * 5 - 10  # 48 tasks at turn 5, 10 at turn 4
    worker = {"done": 2, "written_here": 2, "turns_written": 12, "held_turns": held}
    status = _run(tmp_path, run, [worker])
    work_now = 2 * 6 + held  # turns taken
    rate = work_now / 100.0
    assert status.eta(now=100.0) == pytest.approx((60 * 6 - work_now) / rate)
    assert status.eta(now=100.0) < 30


def test_rates_after_a_resume_count_only_the_work_since(tmp_path: Path) -> None:
    run = {"total_tasks": 100, "state": "running", "launched": 500.0, "done_at_launch": 50}
    worker = {"done": 60, "written_here": 10, "turns_written": 20}
    status = _run(tmp_path, run, [worker])
    assert status.mean_task_rate(now=600.0) == pytest.approx(10 / 100)
    assert status.eta(now=600.0) == pytest.approx(40 * 2 / ((60 * 2 - 50 * 2) / 100))


def test_no_eta_before_a_first_task_is_written(tmp_path: Path) -> None:
    status = _run(tmp_path, {"total_tasks": 10, "launched": 0.0}, [{"held_turns": 30}])
    assert status.eta(now=50.0) is None
