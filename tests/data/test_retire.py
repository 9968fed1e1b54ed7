"""Retiring failed records for ``resume --retry-failed``: nothing lost, nothing twice."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.layout import INDEX_DIR, TORN_DIR, retired_path
from matrixhpc.data.manifest import build_manifest
from matrixhpc.data.retire import PLAN_PREFIX, RetireError
from matrixhpc.data.writers import ShardWriter, recover_shards, retire_failed
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.task import Task

STATUSES = ["ok", "failed", "ok", "failed", "failed", "ok", "ok"]
FAILED = {"w0-r1", "w0-r3", "w0-r4"}


def _record(task_id: str, status: str, attempt: int = 0) -> dict[str, Any]:
    task = Task(id=task_id, seed=1, row={"q": task_id}, origin="w0", status=status)
    task.attempt, task.created = attempt, 1.0e9  # the same bytes in every directory
    if status != "ok":
        task.error = "llm unavailable"
    return task.to_record()


def _write(out: Path, worker: str, statuses: list[str]) -> None:
    writer = ShardWriter(out, worker, shard_records=2)
    for i, status in enumerate(statuses):
        writer.write(_record(f"{worker}-r{i}", status))
    writer.close()


def _state(out: Path) -> dict[str, bytes]:
    """Every file of the output directory (the shards, the log, the index, the plan),
    but for the index's temp files a kill can leave behind (uniquely named, ignored)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not (p.parent.name == INDEX_DIR and p.name.endswith(".tmp"))
    }


def _shard_lines(out: Path, worker: str = "w0") -> list[bytes]:
    return [
        line
        for p in sorted(out.glob(f"part-{worker}-*.jsonl"))
        for line in p.read_bytes().splitlines(keepends=True)
    ]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    out = tmp_path / "output"
    _write(out, "w0", STATUSES)  # shards: [ok failed] [ok failed] [failed ok] [ok]
    _write(out, "w1", ["failed", "ok"])  # another worker: never touched
    return out


def test_failed_records_move_to_the_retired_log(out: Path) -> None:
    before = _shard_lines(out)
    other = {k: v for k, v in _state(out).items() if "w1" in k}

    assert retire_failed(out, "w0") == FAILED

    after = _shard_lines(out)
    retired = retired_path(out, "w0").read_bytes().splitlines(keepends=True)
    assert after == [line for line in before if json.loads(line)["status"] == "ok"]
    assert retired == [line for line in before if json.loads(line)["status"] != "ok"]
    assert sorted(after + retired) == sorted(before)  # every record once, byte for byte
    names = [f"part-w0-{i:05d}.jsonl" for i in range(4)]
    assert sorted(p.name for p in out.glob("part-w0-*")) == names  # the same shard names
    index = json.loads((out / INDEX_DIR / "w0.json").read_text())["shards"]
    assert [(s["file"], s["records"], s["ok"], s["failed"]) for s in index] == [
        (names[0], 1, 1, 0),
        (names[1], 1, 1, 0),
        (names[2], 1, 1, 0),
        (names[3], 1, 1, 0),
    ]
    assert {k: v for k, v in _state(out).items() if "w1" in k} == other
    assert not (out / f"{PLAN_PREFIX}w0.json").exists()
    manifest = build_manifest(out, name="n", config_hash="h")
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (6, 5, 1)  # w1's failed
    assert manifest["retired"] == 3


def test_a_second_call_changes_nothing(out: Path) -> None:
    retire_failed(out, "w0")
    state = _state(out)
    assert retire_failed(out, "w0") == set()
    assert _state(out) == state


def test_nothing_failed_writes_nothing(tmp_path: Path) -> None:
    _write(tmp_path, "w0", ["ok", "ok", "ok"])
    state = _state(tmp_path)
    assert retire_failed(tmp_path, "w0") == set()
    assert _state(tmp_path) == state  # no log, no plan, the same index
    assert retire_failed(tmp_path / "missing", "w0") == set()


def test_torn_lines_are_repaired_first_and_never_retired(out: Path) -> None:
    shard = out / "part-w0-00003.jsonl"
    size = shard.stat().st_size
    with shard.open("ab") as fh:
        fh.write(b'{"id":"w0-r9","status":"failed","ro')
    assert retire_failed(out, "w0") == FAILED
    assert b"w0-r9" not in retired_path(out, "w0").read_bytes()
    assert (out / TORN_DIR / f"{shard.name}.{size}").exists()
    assert shard.stat().st_size == size


@pytest.mark.asyncio
async def test_a_resumed_origin_runs_retired_tasks_again_once(out: Path, tmp_path: Path) -> None:
    """What ``resume --retry-failed`` relies on: retired ids are neither written nor in
    flight, so admission takes them again, and each id ends with one final record."""
    retire_failed(out, "w0")
    found = recover_shards(out, "w0")
    journal = Journal(tmp_path / "journal", "off", commit_interval=0.001)
    journal.open()
    writer = ShardWriter(out, "w0", shard_records=2, recovered=found.shards)
    book = OriginBook(writer, journal, 10)
    book.restore({}, found)
    assert [book.known(f"w0-r{i}") for i in range(7)] == [s == "ok" for s in STATUSES]
    for task_id in sorted(FAILED):
        task = Task(id=task_id, seed=1, row={"q": task_id}, origin="w0")
        await book.admit(task)
        task.status = "ok"
        assert book.complete(task)
    await journal.close()
    writer.close()
    ids = [json.loads(line)["id"] for line in _shard_lines(out)]
    assert sorted(ids) == [f"w0-r{i}" for i in range(7)]  # one final record per id
    assert recover_shards(out, "w0").failed == set()


def test_a_second_round_appends_to_the_log(out: Path) -> None:
    retire_failed(out, "w0")
    first = retired_path(out, "w0").read_bytes()
    writer = ShardWriter(out, "w0", shard_records=2, recovered=recover_shards(out, "w0").shards)
    writer.write(_record("w0-r1", "failed", attempt=1))  # retried, and failed again
    writer.close()
    assert retire_failed(out, "w0") == {"w0-r1"}
    log = retired_path(out, "w0").read_bytes()
    assert log.startswith(first)
    assert log.count(b"\n") == 4
    assert [json.loads(line)["attempt"] for line in log.splitlines() if b'"w0-r1"' in line] == [
        0,
        1,
    ]


# ------------------------------------------------------------- killed anywhere


class Crash(BaseException):
    """Stands for the process being killed at that point (BaseException: nothing catches it)."""


def _crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> Callable[[], int]:
    """Kill the call at its ``step``-th durable step (fsync, rename, unlink);
    everything written before that step stays, as after a killed process."""
    seen = [0]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            seen[0] += 1
            if seen[0] == step:
                raise Crash(f"killed at step {step}: {real.__name__}{args}")
            return real(*args, **kwargs)

        return call

    for name in ("fsync", "replace", "unlink"):
        monkeypatch.setattr(os, name, wrap(getattr(os, name)))
    return lambda: seen[0]


def _reference(tmp_path: Path) -> tuple[set[str], dict[str, bytes]]:
    out = tmp_path / "reference"
    _write(out, "w0", STATUSES)
    return retire_failed(out, "w0"), _state(out)


def _killed_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[int, Path]]:
    """An output directory for every step a retire can be killed at, killed there."""
    step = 1
    while True:
        out = tmp_path / f"killed-{step}"
        _write(out, "w0", STATUSES)
        with monkeypatch.context() as patch:
            steps = _crash_at(patch, step)
            try:
                retire_failed(out, "w0")
            except Crash:
                pass
            else:
                assert steps() == step - 1, "ran to the end"
                return
        yield step, out
        step += 1


def test_killed_at_any_step_a_rerun_ends_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, expected = _reference(tmp_path)
    original = sorted(_shard_lines(tmp_path / "reference") + _retired_lines(tmp_path / "reference"))
    killed = 0
    for step, out in _killed_runs(tmp_path, monkeypatch):
        killed += 1
        assert retire_failed(out, "w0") == ids, f"killed at step {step}"
        assert _state(out) == expected, f"killed at step {step}"
        assert sorted(_shard_lines(out) + _retired_lines(out)) == original  # once each
    assert killed >= 8  # plan, log, three shard rewrites, index, ...: every one was hit


def _retired_lines(out: Path) -> list[bytes]:
    log = retired_path(out, "w0")
    return log.read_bytes().splitlines(keepends=True) if log.exists() else []


def test_a_kill_then_a_plain_resume_writes_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after the log is written: the worker still sees the failed records in the
    shards (written, not re-run) until the retire is finished."""
    ids, _ = _reference(tmp_path)
    for _step, out in _killed_runs(tmp_path, monkeypatch):
        plan = out / f"{PLAN_PREFIX}w0.json"
        if plan.exists() and "log_end" in json.loads(plan.read_text()):
            assert recover_shards(out, "w0").ids == {f"w0-r{i}" for i in range(7)}
            assert retire_failed(out, "w0") == ids
            return
    pytest.fail("no step between the log and the shard rewrites")


# ------------------------------------------------------------- damage is reported


def test_a_damaged_plan_is_a_clear_error(out: Path) -> None:
    plan = out / f"{PLAN_PREFIX}w0.json"
    plan.write_text("{half")
    state = _state(out)
    with pytest.raises(RetireError, match=r"\.retire-w0\.json: not a readable retire plan"):
        retire_failed(out, "w0")
    assert _state(out) == state


def test_a_truncated_log_is_a_clear_error(out: Path) -> None:
    retired_path(out, "w0").write_bytes(b'{"id":"old","status":"failed"}\n')
    plan = out / f"{PLAN_PREFIX}w0.json"
    plan.write_text(json.dumps({"ids": ["w0-r1"], "shards": [], "log_offset": 999}))
    with pytest.raises(RetireError, match=r"_retired-w0\.jsonl: 31 bytes, but it had 999"):
        retire_failed(out, "w0")


def test_a_plan_naming_a_missing_shard_is_a_clear_error(out: Path) -> None:
    plan = out / f"{PLAN_PREFIX}w0.json"
    plan.write_text(json.dumps({"ids": [], "shards": ["../../etc/passwd"], "log_offset": 0}))
    with pytest.raises(RetireError, match="planned shards are missing"):
        retire_failed(out, "w0")
