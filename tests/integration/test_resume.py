"""Fault injection: kill -9 workers or the whole run, `matrixhpc resume`, exactly-once output."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_complete,
    dialogue_config,
    done_count,
    matrixhpc,
    mcq_rows,
    records,
    start_run,
    wait_for,
    write_dataset,
)

from matrixhpc.launch.process import pid_alive


def _pids(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "pids.json").read_text())


def _kill_everything(run_dir: Path, launcher: subprocess.Popen[str] | None = None) -> None:
    pids = _pids(run_dir)
    for pid in [pids["launcher"], *(c["pid"] for c in pids["children"])]:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    if launcher is not None:
        launcher.wait(30)
    wait_for(lambda: not any(pid_alive(c["pid"]) for c in pids["children"]), 30)


def _resume_until_done(run_dir: Path, *args: str, attempts: int = 4) -> None:
    for _ in range(attempts):
        proc = matrixhpc("resume", str(run_dir), *args, timeout=600)
        if proc.returncode == 0:
            return
    raise AssertionError(f"resume did not finish the run: {proc.stderr}")


# every role on every worker, and roles split across groups (every step a hand-off)
SPLIT = {
    "talkers": {"count": 2, "roles": ["student", "teacher"]},
    "judges": {"count": 2, "roles": ["extractor", "matcher"]},
}


@pytest.mark.parametrize("groups", [None, SPLIT], ids=["all-roles", "split-groups"])
def test_kill_workers_repeatedly_and_the_whole_run(
    tmp_path: Path, groups: dict[str, Any] | None
) -> None:
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(50))
    workers: dict[str, Any] = {"count": 4, "groups": groups or {}}
    cfg = dialogue_config(tmp_path, data, 0.02, workers=workers)
    run_dir = tmp_path / "run"
    launcher = start_run(
        cfg,
        run_dir,
        "dataset.trials=40",
        "workers.window=60",
        "workers.restarts=20",
        "workers.ack_timeout=2",
    )
    rng = random.Random(1)
    # kill at points of progress, not of time: a faster machine must not finish first
    for mark in (200, 400, 600):  # kill -9 two workers; the launcher restarts them
        wait_for(lambda m=mark: done_count(run_dir) >= m)
        workers = [c for c in _pids(run_dir)["children"] if c["kind"] == "worker"]
        for victim in rng.sample(workers, 2):
            if pid_alive(victim["pid"]):
                os.kill(victim["pid"], signal.SIGKILL)
    wait_for(lambda: done_count(run_dir) >= 800)
    assert launcher.poll() is None, "the run should still be going"
    _kill_everything(run_dir, launcher)  # and then every process at once
    assert done_count(run_dir) < 2000, "the run should be cut short"
    _resume_until_done(run_dir)
    recs = records(run_dir)
    assert_complete(recs, 2000)
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["records"] == 2000
    assert manifest["state"] == "finished"
    restarted = [json.loads(p.read_text()) for p in (run_dir / "status").glob("*.json")]
    assert sum(s["replayed"] for s in restarted) > 0, "workers must have replayed journals"
    if groups:
        assert all(s["received"] > 0 for s in restarted), "every worker takes hand-offs"


@pytest.mark.parametrize("groups", [None, SPLIT], ids=["all-roles", "split-groups"])
def test_stop_and_resume_without_a_kill(tmp_path: Path, groups: dict[str, Any] | None) -> None:
    """A plain `stop` then `resume`, twice: nothing stranded, every task written once."""
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(50))
    workers: dict[str, Any] = {"count": 4, "groups": groups or {}}
    cfg = dialogue_config(tmp_path, data, 0.02, workers=workers)
    run_dir = tmp_path / "run"
    launcher = start_run(cfg, run_dir, "dataset.trials=20", "workers.window=50")
    wait_for(lambda: done_count(run_dir) >= 150)
    assert matrixhpc("stop", str(run_dir)).returncode == 0
    launcher.communicate(timeout=120)
    resumed = subprocess.Popen(
        [sys.executable, "-m", "matrixhpc", "resume", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: done_count(run_dir) >= 500 or resumed.poll() is not None)
    if resumed.poll() is None:
        assert matrixhpc("stop", str(run_dir)).returncode == 0
    resumed.communicate(timeout=120)
    _resume_until_done(run_dir, attempts=1)
    assert_complete(records(run_dir), 1000)


def _engine_requests(run_dir: Path) -> int | None:
    entry = run_dir / "registry" / "llm" / "llm" / "r0.json"
    try:
        url = json.loads(entry.read_text())["url"].removesuffix("/v1") + "/metrics"
        text = urllib.request.urlopen(url, timeout=2).read().decode()
    except (OSError, ValueError, KeyError):
        return None
    for line in text.splitlines():
        if line.startswith("sim_requests_total"):
            return int(float(line.split()[-1]))
    return None


def _poll_requests(run_dir: Path, proc: subprocess.Popen[str] | None, until: Any) -> int:
    """Highest request count the run's engine reported while ``until()`` was false."""
    seen = 0
    while not until():
        count = _engine_requests(run_dir)
        if count is not None:
            seen = max(seen, count)
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    return seen


def test_long_dialogue_resumes_from_its_journaled_turn(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "one.jsonl", mcq_rows(1))
    cfg = dialogue_config(tmp_path, data, 0.15, workers={"count": 1})
    text = cfg.read_text()
    text = text.replace("state.agreed or state.turns >= 6", "state.turns >= 20")
    cfg.write_text(text)
    run_dir = tmp_path / "run"
    launcher = start_run(cfg, run_dir, "services.llm.replicas=1")

    def llm_turns_journaled() -> bool:
        status = run_dir / "status" / "w000.json"
        return (
            status.exists()
            and json.loads(status.read_text())["roles"].get("student", {}).get("steps", 0) >= 5
        )

    before = _poll_requests(run_dir, launcher, llm_turns_journaled)
    before = max(before, _engine_requests(run_dir) or 0)
    _kill_everything(run_dir, launcher)
    resumed = subprocess.Popen(
        [sys.executable, "-m", "matrixhpc", "resume", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # let the new engine replace the old registry entry
    after = _poll_requests(run_dir, resumed, lambda: resumed.poll() is not None)
    assert resumed.wait(120) == 0, resumed.stderr.read() if resumed.stderr else ""
    (record,) = records(run_dir)
    llm_turns = [t for t in record["history"] if t["role"] in ("student", "teacher")]
    assert len(llm_turns) == 20
    assert record["state"]["turns"] == 20
    assert before >= 9, f"killed too early to tell ({before} calls)"
    # undisturbed, the dialogue makes 20 calls; resumed from turn 0 it would make ~30
    assert before + after <= 21, f"{before} calls before the kill + {after} after"


def test_torn_journal_and_output_tails_are_repaired(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(40))
    cfg = dialogue_config(tmp_path, data, 0.05)
    run_dir = tmp_path / "run"
    launcher = start_run(cfg, run_dir, "dataset.trials=5", "workers.window=20")
    wait_for(lambda: done_count(run_dir) >= 30)
    _kill_everything(run_dir, launcher)
    segment = sorted((run_dir / "journal" / "w000").glob("seg-*.log"))[-1]
    with segment.open("ab") as fh:  # a record cut off mid-write: header promises more
        fh.write((5000).to_bytes(4, "little") + (123).to_bytes(4, "little") + b"\x93partial")
    shard = sorted((run_dir / "output").glob("part-w001-*.jsonl"))[-1]
    with shard.open("ab") as fh:
        fh.write(b'{"id":"r999-t0","attempt":0,"se')
    _resume_until_done(run_dir)
    recs = records(run_dir)  # every line parses: the torn one is gone
    assert_complete(recs, 200)
    torn = list((run_dir / "output" / "_torn").iterdir())
    assert len(torn) == 1
    assert torn[0].read_bytes().startswith(b'{"id":"r999-t0"')
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["repaired"]
    assert manifest["records"] == 200
    status = json.loads((run_dir / "status" / "w000.json").read_text())
    assert status["journal"]["torn"] >= 1


def test_resume_with_changed_dataset_is_refused(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(30))
    cfg = dialogue_config(tmp_path, data, 0.1)
    run_dir = tmp_path / "run"
    launcher = start_run(cfg, run_dir, "dataset.trials=10", "workers.window=10")
    wait_for(lambda: done_count(run_dir) >= 5)
    _kill_everything(run_dir, launcher)
    write_dataset(data, mcq_rows(31))
    refused = matrixhpc("resume", str(run_dir))
    assert refused.returncode == 2
    assert "the input" in refused.stderr
    assert "--force" in refused.stderr
    changed_config = matrixhpc("resume", str(run_dir), "workers.window=11")
    assert changed_config.returncode == 2
    assert "the config" in changed_config.stderr
    _resume_until_done(run_dir, "--force")
    assert_complete(records(run_dir), 310)
