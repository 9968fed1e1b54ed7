"""Fault paths with roles split across worker groups (every step a hand-off between processes).

Each test injects one fault from issue 9 into a real run (subprocesses, sockets, files) and
checks the promise that defines matrixhpc: every task is written exactly once, and a fault
ends either in a completed run or in a resumable stop that ``matrixhpc resume`` finishes.

- a worker SIGSTOPped for three short leases: its tasks are re-issued, but no lease storm;
- every LLM replica killed while nobody restarts them: the workers wait ``replica_wait``,
  stop resumably naming the outage, write no ``failed`` record, and a resume completes;
- an origin's journal directory lost after a kill -9: its re-admitted tasks carry new tokens,
  so peers do not drop them as duplicates of the lost admissions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_complete,
    dialogue_config,
    done_count,
    mcq_rows,
    records,
    start_run,
    wait_for,
    write_dataset,
)
from test_resume import _kill_everything, _pids, _resume_until_done

from matrixhpc.launch.process import pid_alive

#: two talkers and one judge: every step of a dialogue crosses a process boundary
WORKERS: dict[str, Any] = {
    "count": 3,
    "groups": {
        "talkers": {"count": 2, "roles": ["student", "teacher"]},
        "judges": {"count": 1, "roles": ["extractor", "matcher"]},
    },
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """The run's directory; whatever the test leaves running is killed by PID afterwards
    (a stopped process is continued first, so that the SIGKILL is delivered at once)."""
    path = tmp_path / "run"
    yield path
    if not (path / "pids.json").exists():
        return
    pids = _pids(path)
    for pid in [pids["launcher"], *(c["pid"] for c in pids["children"])]:
        if pid_alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)


def _statuses(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((run_dir / "status").glob("*.json"))}


def _children(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    return [c for c in _pids(run_dir)["children"] if c["kind"] == kind]


def _split_run(tmp_path: Path, run_dir: Path, rows: int, scale: float, *args: str) -> Any:
    """A dialogue run of ``rows`` x ``dataset.trials`` tasks over the split worker groups."""
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(rows))
    cfg = dialogue_config(tmp_path, data, scale, workers=WORKERS)
    return start_run(cfg, run_dir, *args)


def test_sigstopped_worker_with_a_short_lease_does_not_storm(tmp_path: Path, run_dir: Path) -> None:
    """Stopped for three leases, a talker's tasks are re-issued about once each, not stormed
    (the issue saw 3,675 re-issues for 500 tasks); tasks moving elsewhere keep their leases
    by renewals, and nothing is given up (``max_attempts`` 3) or written twice."""
    launcher = _split_run(
        tmp_path,
        run_dir,
        50,
        0.2,
        "dataset.trials=6",
        "workers.window=40",
        "workers.lease=4",
        "workers.ack_timeout=2",
    )
    wait_for(lambda: done_count(run_dir) >= 50)
    victim = next(s for s in _statuses(run_dir).values() if s["group"] == "talkers")
    assert any(c["pid"] == victim["pid"] for c in _children(run_dir, "worker"))
    os.kill(victim["pid"], signal.SIGSTOP)
    try:
        held = _statuses(run_dir)[victim["worker"]]["held"]  # its last word before the stop
        stopped_at = done_count(run_dir)
        # three leases; the run cannot finish meanwhile: the victim is the origin of a third
        with pytest.raises(subprocess.TimeoutExpired):
            launcher.wait(12)
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
    _, err = launcher.communicate(timeout=120)
    assert launcher.returncode == 0, err
    assert_complete(records(run_dir), 300)
    statuses = _statuses(run_dir)
    reissued = sum(s["reissued"] for s in statuses.values())
    renewed = sum(s["renewed"] for s in statuses.values())
    attempts = max(r["attempt"] for r in records(run_dir))
    print(
        f"\nvictim {victim['worker']} held {held}, {stopped_at}/300 done at the stop; "
        f"re-issued {reissued}, renewed {renewed}, highest attempt written {attempts}"
    )
    assert reissued > 0, "three leases passed: the victim's tasks should have been re-issued"
    # a storm re-issues tasks that are moving and re-issues them again and again (the issue
    # saw 3,675 for 500 tasks); here only what sat at the stopped worker is, about once each
    # (its own tasks waiting unread in its inbox can be re-issued by it when it wakes)
    assert reissued <= 2 * held, f"{reissued} re-issues for {held} held"
    assert reissued < 300 // 2, f"{reissued} re-issues for {held} held"
    assert attempts <= 2, f"a task was re-issued {attempts} times"


def test_every_replica_gone_past_the_wait_then_back(tmp_path: Path, run_dir: Path) -> None:
    """Nobody restarts the replicas (the launcher is gone, as when Slurm requeues the server
    jobs): the talkers wait ``replica_wait``, stop resumably naming the outage, and write no
    ``failed`` record; the judge is still waiting when ``resume`` stops it and completes."""
    launcher = _split_run(
        tmp_path,
        run_dir,
        50,
        0.2,
        "dataset.trials=4",
        "workers.window=30",
        "services.llm.replica_wait=3",
    )
    wait_for(lambda: done_count(run_dir) >= 30)
    os.kill(_pids(run_dir)["launcher"], signal.SIGKILL)  # first: it must not stop the workers
    launcher.wait(30)
    for replica in _children(run_dir, "service"):
        os.kill(replica["pid"], signal.SIGKILL)
    statuses = _statuses(run_dir)
    talkers = [s for s in statuses.values() if s["group"] == "talkers"]
    judge = next(s for s in statuses.values() if s["group"] == "judges")
    wait_for(lambda: not any(pid_alive(s["pid"]) for s in talkers), 60)
    faults = {name: s["fault"] for name, s in _statuses(run_dir).items()}
    print(f"\nfaults: {faults}; {done_count(run_dir)}/200 done at the outage")
    for talker in talkers:
        fault = faults[talker["worker"]] or ""
        assert "'llm' unavailable" in fault, f"{talker['worker']}: fault {fault!r}"
    assert pid_alive(judge["pid"]), "the judge makes no LLM calls: it is still waiting"
    assert [r["id"] for r in records(run_dir) if r["status"] != "ok"] == []
    assert done_count(run_dir) < 200, "the outage should cut the run short"
    _resume_until_done(run_dir)
    assert not pid_alive(judge["pid"]), "resume stops the last launch's leftovers"
    assert_complete(records(run_dir), 200)


def test_lost_journal_directory_of_an_origin(tmp_path: Path, run_dir: Path) -> None:
    """kill -9 of everything, then an origin's journal is gone (its output shards remain):
    the origin re-admits its unwritten tasks with new tokens, peers take them (not dropped
    as duplicates of the lost admissions), and the stale copies of the old admissions that
    peers still drive are dropped by the origin: every task is written once. The hand-offs
    the origin had received and ACKed are lost with its journal: their own origins re-issue
    them when their lease expires (short here; with the default hour the resume waits that
    long)."""
    launcher = _split_run(
        tmp_path, run_dir, 50, 0.1, "dataset.trials=4", "workers.window=30", "workers.lease=5"
    )
    wait_for(lambda: _statuses(run_dir).get("w000", {}).get("done", 0) >= 10)
    _kill_everything(run_dir, launcher)
    written = [r["id"] for r in records(run_dir) if r["origin"] == "w000"]
    assert len(written) >= 10
    assert len(records(run_dir)) < 200, "the kill should cut it short"
    shutil.rmtree(run_dir / "journal" / "w000")
    _resume_until_done(run_dir)
    recs = records(run_dir)
    assert_complete(recs, 200)
    statuses = _statuses(run_dir)
    keys = ("admitted", "stale", "duplicate_returns", "reissued")
    figures = {n: [s[k] for k in keys] for n, s in statuses.items()}
    print(f"\nw000 wrote {len(written)} before the loss; {keys}: {figures}")
