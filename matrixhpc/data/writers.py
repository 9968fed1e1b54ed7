"""Output shards written by each origin worker, and its bad-row log.

One writer per file (no concurrent appends from many nodes: they corrupt files
on NFS/Lustre); shards roll after ``shard_records`` so no file grows without
bound; a small per-worker index (records per shard) is refreshed on every flush
so the manifest never has to re-read the data.

Reading the shards back after a restart (:func:`recover_shards`) lives in
:mod:`matrixhpc.data.shard_recovery`, retiring failed records in
:mod:`matrixhpc.data.retire`; both names are importable from here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import orjson

from matrixhpc.data.layout import (
    ERRORS_DIR,
    INDEX_DIR,
    TORN_DIR,
    shard_name,
    write_index,
)
from matrixhpc.data.retire import RetireError, retire_failed
from matrixhpc.data.shard_recovery import ShardRecovery, recover_shards
from matrixhpc.data.tally import count, new_shard
from matrixhpc.files import fsync_dir, fsync_file

__all__ = [
    "ERRORS_DIR",
    "INDEX_DIR",
    "TORN_DIR",
    "ErrorLog",
    "RetireError",
    "ShardRecovery",
    "ShardWriter",
    "recover_shards",
    "retire_failed",
]


def _dumps(record: Any) -> str:
    """orjson: compact UTF-8, several times faster than json on long histories; json
    for what orjson refuses (integers beyond 64 bits), so a record is never lost."""
    try:
        return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)


class ShardWriter:
    """Appends records to this worker's shards; after a restart it continues with a new
    shard (``recovered`` lists the old ones), never reopening a file it wrote before.

    Durability. The journal fsyncs the open shard with each group (``sync_fds``), so a
    record it vouches for is on disk, but only in the shard open at that moment. With
    ``durable`` (the default) a shard that rolls is therefore flushed and fsynced before
    it is closed, and the new shard's directory entry is fsynced: two fsyncs per
    ``shard_records`` records, on the event loop (rare, and a group's fsync costs as much).
    ``durable=False`` is for ``durability: off`` (and benchmarks), which promise no fsync.

    The descriptor handed to the journal (:meth:`fileno`) is a ``dup()`` the writer owns:
    the journal fsyncs it in a thread while the event loop goes on writing, and a roll
    closes the shard file then; the duplicate keeps that file open, and its number can
    never be reused for the next shard. It is closed at the next :meth:`fileno` call
    (the journal asks once per group and never runs two groups at once, so the thread
    that used it is done) or by :meth:`close` (after the journal's). Chosen over a lock
    or a roll that waits: the writer stays synchronous, the journal needs no change,
    and it costs one ``dup``/``close`` per group.
    """

    def __init__(
        self,
        out_dir: Path,
        worker: str,
        shard_records: int,
        recovered: list[dict[str, Any]] | None = None,
        *,
        durable: bool = True,
    ) -> None:
        self.out_dir = out_dir
        self.worker = worker
        self.shard_records = shard_records
        self.durable = durable
        self.shards: list[dict[str, Any]] = list(recovered or [])
        self._fh: IO[str] | None = None
        self._lent = -1  # the dup() of the open shard lent to the journal's fsync thread
        self._indexed: list[dict[str, Any]] | None = None  # the index as last written
        out_dir.mkdir(parents=True, exist_ok=True)

    def _roll(self) -> IO[str]:
        self._close_shard()
        name = shard_name(self.worker, len(self.shards))
        self._fh = (self.out_dir / name).open("x", encoding="utf-8")  # never reopen a file
        self.shards.append(new_shard(name))
        if self.durable:
            fsync_dir(self.out_dir)
        return self._fh

    def _close_shard(self) -> None:
        """Close the open shard, fsynced first (see the class docstring)."""
        if self._fh is None:
            return
        if self.durable:
            fsync_file(self._fh)
        self._fh.close()
        self._fh = None

    def fileno(self) -> int:
        """A descriptor of the open shard for the journal's fsync thread, or -1.

        Closes the one lent for the previous group (see the class docstring)."""
        self._return_lent()
        if self._fh is not None:
            self._lent = os.dup(self._fh.fileno())
        return self._lent

    def _return_lent(self) -> None:
        if self._lent >= 0:
            os.close(self._lent)
            self._lent = -1

    def write(self, record: dict[str, Any]) -> None:
        fh = self._fh
        if fh is None or self.shards[-1]["records"] >= self.shard_records:
            fh = self._roll()
        fh.write(_dumps(record) + "\n")
        count(self.shards[-1], record)

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def write_index(self, *, only_if_changed: bool = False) -> None:
        """Flush, and write the index (with ``only_if_changed``: unless it is what was
        last written)."""
        self.flush()
        if only_if_changed and self.shards == self._indexed:
            return
        write_index(self.out_dir, self.worker, self.shards, fsync=self.durable)
        self._indexed = [dict(s) for s in self.shards]

    def close(self) -> None:
        self.write_index()
        self._close_shard()
        self._return_lent()


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
