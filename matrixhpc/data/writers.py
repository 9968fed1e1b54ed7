"""Output shards written by each origin worker, and its bad-row log.

One writer per file (no concurrent appends from many nodes: they corrupt files
on NFS/Lustre); shards roll after ``shard_records`` so no file grows without
bound; a small per-worker index (records per shard) is refreshed on every flush
so the manifest never has to re-read the data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from matrixhpc.runtime.registry import atomic_write_json

ERRORS_DIR = "errors"
INDEX_DIR = ".index"
TORN_DIR = "_torn"


def _dumps(record: Any) -> str:
    """orjson: compact UTF-8, several times faster than json on long histories; json
    for what orjson refuses (integers beyond 64 bits), so a record is never lost."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


class ShardWriter:
    """Appends records to this worker's shards; after a restart it continues with a new
    shard (``recovered`` lists the old ones), never reopening a file it wrote before."""

    def __init__(
        self,
        out_dir: Path,
        worker: str,
        shard_records: int,
        recovered: list[dict[str, Any]] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.worker = worker
        self.shard_records = shard_records
        self.shards: list[dict[str, Any]] = list(recovered or [])
        self._fh: IO[str] | None = None
        out_dir.mkdir(parents=True, exist_ok=True)

    def _roll(self) -> IO[str]:
        if self._fh is not None:
            self._fh.close()
        name = f"part-{self.worker}-{len(self.shards):05d}.jsonl"
        self.shards.append({"file": name, "records": 0, "ok": 0, "failed": 0})
        self._fh = (self.out_dir / name).open("x", encoding="utf-8")
        return self._fh

    def fileno(self) -> int:
        """The open shard's descriptor (for fsync with a journal group), or -1."""
        return self._fh.fileno() if self._fh is not None else -1

    def write(self, record: dict[str, Any]) -> None:
        fh = self._fh
        if fh is None or self.shards[-1]["records"] >= self.shard_records:
            fh = self._roll()
        fh.write(_dumps(record) + "\n")
        shard = self.shards[-1]
        shard["records"] += 1
        shard["ok" if record.get("status") == "ok" else "failed"] += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def write_index(self) -> None:
        self.flush()
        atomic_write_json(self.out_dir / INDEX_DIR / f"{self.worker}.json", {"shards": self.shards})

    def close(self) -> None:
        self.write_index()
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class ErrorLog:
    """Rows that failed to parse or validate: source, line, reason."""

    def __init__(self, out_dir: Path, worker: str) -> None:
        self.path = out_dir / ERRORS_DIR / f"{worker}.jsonl"
        self.count = 0
        self._fh: IO[str] | None = None

    def write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(_dumps(record) + "\n")
        self.count += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


@dataclass
class ShardRecovery:
    """What a restarting origin learns from its own shards."""

    ids: set[str] = field(default_factory=set)
    shards: list[dict[str, Any]] = field(default_factory=list)
    repaired: list[dict[str, Any]] = field(default_factory=list)

    def count(self, key: str) -> int:
        return sum(int(s[key]) for s in self.shards)


def recover_shards(out_dir: Path, worker: str) -> ShardRecovery:
    """Read this worker's shards: ids written, counts; repair a torn last line.

    A torn line (a crash mid-write) is moved to ``_torn/`` and cut from the shard;
    every complete record stays where it is.
    """
    found = ShardRecovery()
    for path in sorted(out_dir.glob(f"part-{worker}-*.jsonl")):
        _repair_tail(path, out_dir, found)
        shard: dict[str, Any] = {"file": path.name, "records": 0, "ok": 0, "failed": 0}
        with path.open("rb") as fh:
            for line in fh:
                task_id, ok = _id_and_status(line)
                found.ids.add(task_id)
                shard["records"] += 1
                shard["ok" if ok else "failed"] += 1
        found.shards.append(shard)
    return found


def _repair_tail(path: Path, out_dir: Path, found: ShardRecovery) -> None:
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    torn = out_dir / TORN_DIR / f"{path.name}.{keep}"
    torn.parent.mkdir(parents=True, exist_ok=True)
    torn.write_bytes(data[keep:])
    with path.open("r+b") as fh:
        fh.truncate(keep)
    found.repaired.append(
        {
            "file": path.name,
            "offset": keep,
            "bytes": len(data) - keep,
            "saved_as": str(torn.relative_to(out_dir)),
        }
    )


def _id_and_status(line: bytes) -> tuple[str, bool]:
    """Records start ``{"id":"...`` and carry ``status`` before ``row`` (see
    Task.to_record): read both without a full parse; anything else is parsed."""
    if line.startswith(b'{"id":"'):
        end = line.find(b'"', 7)
        status = line.find(b'"status":', 0, 400)
        if end > 0 and status > 0 and b"\\" not in line[7:end]:
            return line[7:end].decode(), line.startswith(b'"status":"ok"', status)
    record = json.loads(line)
    return str(record["id"]), record.get("status") == "ok"
