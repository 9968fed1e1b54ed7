"""``matrixhpc status`` from the workers' status files: totals, roles, the clients' replicas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        _worker("w000", 10, {"r0": {"requests": 5, "outstanding": 2, "external": 7}}),
        _worker(
            "w001",
            30,
            {
                "r0": {"requests": 4, "failures": 1, "outstanding": 1, "external": 3},
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
    assert (r0["requests"], r0["failures"], r0["outstanding"], r0["external"]) == (9, 1, 3, 7)
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
