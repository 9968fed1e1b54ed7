"""Retiring a worker's failed records, so that a resume runs those tasks again.

For ``matrixhpc resume --retry-failed``: once the cause of the failures is fixed,
each origin's records whose status is not ``ok`` are moved out of its shards into
``_retired-<worker>.jsonl`` (nothing is lost). The resumed worker then finds those
ids neither written nor in flight and admits them again, so each id still ends with
exactly one final record in the shards. Run it only while the run is stopped: it
rewrites shards that otherwise only their worker writes.

Crash safety. A plan, ``.retire-<worker>.json`` (written durably), fixes what is
retired: the failed ids, the shards that hold them, and the size of the retired log
before. Then:

1. the retired log is cut back to that size and the failed records are appended
   from the shards (not yet touched), fsynced; the plan records the log's new size;
2. each planned shard is rewritten without its failed records, under the same name
   (temp file, fsync, rename);
3. the index is rebuilt from the shards, and the plan is deleted.

A call that finds a plan finishes it. Every step can be redone, so a call killed
anywhere and made again ends in the same state, with every record exactly once:
in a shard or in the retired log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from matrixhpc.data.layout import (
    lines_with_offsets,
    parse_record,
    retired_path,
    rewrite_lines,
    shard_paths,
    write_index,
)
from matrixhpc.data.shard_recovery import recover_shards
from matrixhpc.files import atomic_write_json, fsync_dir, fsync_file, read_json

PLAN_PREFIX = ".retire-"


class RetireError(Exception):
    """The plan or the retired log is not what an earlier call left (damaged or edited)."""


def retire_failed(out_dir: Path, worker: str) -> set[str]:
    """Move ``worker``'s failed records out of its shards; returns their ids.

    If an earlier call was interrupted, this one finishes it and returns its ids;
    with nothing failed it changes nothing and returns an empty set."""
    plan_path = out_dir / f"{PLAN_PREFIX}{worker}.json"
    plan = _read_plan(plan_path) if plan_path.exists() else _make_plan(out_dir, worker, plan_path)
    if plan is None:
        return set()
    shards = _planned_shards(out_dir, worker, plan, plan_path)
    if "log_end" not in plan:
        plan["log_end"] = _append_retired(retired_path(out_dir, worker), shards, plan, plan_path)
        atomic_write_json(plan_path, plan, sync_dir=True)
    for shard in shards:
        rewrite_lines(shard, lambda _offset, line: not _failed(line))
    write_index(out_dir, worker, recover_shards(out_dir, worker).shards)
    plan_path.unlink()  # need not be durable: a plan found again is finished again, a no-op
    return set(plan["ids"])


def _make_plan(out_dir: Path, worker: str, plan_path: Path) -> dict[str, Any] | None:
    found = recover_shards(out_dir, worker)  # repairs first: only valid records are moved
    if not found.failed:
        return None
    log = retired_path(out_dir, worker)
    plan = {
        "ids": sorted(found.failed),
        "shards": [s["file"] for s in found.shards if s["failed"]],
        "log_offset": log.stat().st_size if log.exists() else 0,
    }
    atomic_write_json(plan_path, plan, sync_dir=True)
    return plan


def _read_plan(plan_path: Path) -> dict[str, Any]:
    plan = read_json(plan_path)
    if not isinstance(plan, dict) or not _is_plan(plan):
        raise RetireError(
            f"{plan_path}: not a readable retire plan; it was damaged or edited. The "
            "shards and the retired log are intact: compare them before deleting it"
        )
    return plan


def _is_plan(plan: dict[str, Any]) -> bool:
    return (
        isinstance(plan.get("ids"), list)
        and isinstance(plan.get("shards"), list)
        and isinstance(plan.get("log_offset"), int)
    )


def _planned_shards(
    out_dir: Path, worker: str, plan: dict[str, Any], plan_path: Path
) -> list[Path]:
    present = {p.name: p for p in shard_paths(out_dir, worker)}
    missing = [name for name in plan["shards"] if name not in present]
    if missing:
        raise RetireError(f"{plan_path}: planned shards are missing from {out_dir}: {missing}")
    return [present[name] for name in plan["shards"]]


def _append_retired(log: Path, shards: list[Path], plan: dict[str, Any], plan_path: Path) -> int:
    """Cut the log back to its size before this plan, append the failed records of
    ``shards``, fsync; returns the log's new size."""
    offset = plan["log_offset"]
    fd = os.open(log, os.O_RDWR | os.O_CREAT, 0o644)
    with os.fdopen(fd, "r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size < offset:
            raise RetireError(
                f"{log}: {size} bytes, but it had {offset} when {plan_path} was made: "
                "it was truncated or replaced; restore it before retrying"
            )
        fh.truncate(offset)
        fh.seek(offset)
        for shard in shards:
            for _offset, line in lines_with_offsets(shard):
                if _failed(line):
                    fh.write(line)
        fsync_file(fh)
        end = fh.tell()
    fsync_dir(log.parent)
    return end


def _failed(line: bytes) -> bool:
    """A valid record whose status is not ``ok`` (what the writer counts as failed)."""
    record = parse_record(line)
    return record is not None and record.get("status") != "ok"
