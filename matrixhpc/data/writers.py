"""Output shards written by each origin worker, and its bad-row log.

One writer per file (no concurrent appends from many nodes: they corrupt files
on NFS/Lustre); shards roll after ``shard_records`` so no file grows without
bound; a small per-worker index (records per shard) is refreshed on every flush
so the manifest never has to re-read the data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from matrixhpc.runtime.registry import atomic_write_json

ERRORS_DIR = "errors"
INDEX_DIR = ".index"


def _dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


class ShardWriter:
    def __init__(self, out_dir: Path, worker: str, shard_records: int) -> None:
        self.out_dir = out_dir
        self.worker = worker
        self.shard_records = shard_records
        self.shards: list[dict[str, Any]] = []
        self._fh: IO[str] | None = None
        out_dir.mkdir(parents=True, exist_ok=True)

    def _roll(self) -> IO[str]:
        if self._fh is not None:
            self._fh.close()
        name = f"part-{self.worker}-{len(self.shards):05d}.jsonl"
        self.shards.append({"file": name, "records": 0, "ok": 0, "failed": 0})
        self._fh = (self.out_dir / name).open("a", encoding="utf-8")
        return self._fh

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
        atomic_write_json(self.out_dir / INDEX_DIR / f"{self.worker}.json", {"shards": self.shards})

    def close(self) -> None:
        self.flush()
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
