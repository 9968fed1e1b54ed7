"""A restarting origin reads back its own output shards: ids written, counts, repairs.

Every line is parsed: a line that is not a complete JSON object with a string id is
never counted as written (its task simply runs again), and never stops the recovery.
(Reading only the first bytes of each line took a torn line for a record, or raised
on one it could not read.)

A bad piece is saved under ``_torn/<shard>.<offset>`` and cut out of the shard:

- bad pieces after the last valid record (a torn tail: a crash mid-write) are
  truncated away;
- a bad line before a valid record (a block of NUL bytes left by a node crash, a
  filesystem fault) is removed by rewriting the shard without it: temp file, fsync,
  rename, so the shard is the old file or the new one, never a mix.

Each is reported in ``repaired``. The saved piece is made durable before the shard
changes, so a repair cut short by a crash is simply redone by the next recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrixhpc.data.layout import (
    TORN_DIR,
    lines_with_offsets,
    parse_record,
    rewrite_lines,
    shard_paths,
)
from matrixhpc.data.tally import count, new_shard
from matrixhpc.files import fsync_file, write_atomically


@dataclass
class ShardRecovery:
    """What a restarting origin learns from its own shards."""

    ids: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # ids whose record is not "ok"
    shards: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)

    def count(self, key: str) -> int:
        return sum(int(s[key]) for s in self.shards)


@dataclass
class _Scan:
    """One shard read line by line: its counts and the pieces that are not records."""

    shard: dict[str, Any]
    bad: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, bytes)
    good_end: int = 0  # offset just past the last valid record


def recover_shards(out_dir: Path, worker: str) -> ShardRecovery:
    """Read this worker's shards: ids written, counts; repair what is not a record."""
    found = ShardRecovery()
    for path in shard_paths(out_dir, worker):
        scan = _scan(path, found)
        if scan.bad:
            _repair(path, out_dir, scan, found)
        found.shards.append(scan.shard)
    return found


def _scan(path: Path, found: ShardRecovery) -> _Scan:
    scan = _Scan(new_shard(path.name))
    for offset, line in lines_with_offsets(path):
        record = parse_record(line) if line.endswith(b"\n") else None
        if record is None:
            scan.bad.append((offset, line))
            continue
        task_id: str = record["id"]
        ok = record.get("status") == "ok"
        found.ids.add(task_id)
        if not ok:
            found.failed.add(task_id)
        count(scan.shard, record)
        scan.good_end = offset + len(line)
    return scan


def _repair(path: Path, out_dir: Path, scan: _Scan, found: ShardRecovery) -> None:
    saved = [_save_piece(out_dir, path.name, offset, piece) for offset, piece in scan.bad]
    if scan.bad[0][0] >= scan.good_end:  # only a tail: cut it off in place
        with path.open("r+b") as fh:
            fh.truncate(scan.good_end)
            fsync_file(fh)
    else:
        bad = {offset for offset, _ in scan.bad}
        rewrite_lines(path, lambda offset, _line: offset not in bad)
    for (offset, piece), saved_as in zip(scan.bad, saved, strict=True):
        found.repaired.append(
            {
                "file": path.name,
                "offset": offset,
                "bytes": len(piece),
                "saved_as": saved_as,
                "reason": "invalid line" if piece.endswith(b"\n") else "torn tail",
            }
        )


def _save_piece(out_dir: Path, shard: str, offset: int, piece: bytes) -> str:
    """Keep a cut piece under ``_torn/``; the same piece again (a rerun) keeps its name,
    a different one at the same offset (a later fault) gets a new one."""
    directory = out_dir / TORN_DIR
    directory.mkdir(parents=True, exist_ok=True)
    target, n = directory / f"{shard}.{offset}", 0
    while target.exists() and target.read_bytes() != piece:
        n += 1
        target = directory / f"{shard}.{offset}.{n}"
    if not target.exists():
        write_atomically(target, [piece], sync_dir=True, one_writer=True)
    return str(target.relative_to(out_dir))
