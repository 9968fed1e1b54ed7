"""Where a worker's output lives, and the few filesystem steps that make a change durable.

Shared by the shard writer, shard recovery and the retiring of failed records, so
they agree on names and never half-replace a file: every rewrite goes through
:func:`matrixhpc.files.write_atomically` with ``sync_dir`` (temp file, fsync, rename
over the original, fsync of the directory: a rename is durable only once its
directory is) and ``one_writer`` (a worker is the only writer of its shards).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

from matrixhpc.files import atomic_write_json, write_atomically

ERRORS_DIR = "errors"
INDEX_DIR = ".index"
TORN_DIR = "_torn"
RETIRED_PREFIX = "_retired-"


def shard_name(worker: str, number: int) -> str:
    return f"part-{worker}-{number:05d}.jsonl"


def shard_paths(out_dir: Path, worker: str) -> list[Path]:
    """This worker's shards, oldest first: exactly ``part-<worker>-<digits>.jsonl``, so
    ``w0`` never picks up the shards of ``w0-x`` (a plain glob would)."""
    pattern = re.compile(rf"part-{re.escape(worker)}-\d+\.jsonl")
    return sorted(p for p in out_dir.glob(f"part-{worker}-*.jsonl") if pattern.fullmatch(p.name))


def retired_path(out_dir: Path, worker: str) -> Path:
    return out_dir / f"{RETIRED_PREFIX}{worker}.jsonl"


def write_index(
    out_dir: Path, worker: str, shards: list[dict[str, Any]], *, fsync: bool = True
) -> None:
    """The per-worker index the manifest is built from. A cache (recovery rebuilds it
    from the shards), so its directory is not fsynced (nor the file, with ``fsync``
    false: ``durability: off``); the temp name is unique, so a stale process writing it
    at the same time cannot make a write fail."""
    atomic_write_json(out_dir / INDEX_DIR / f"{worker}.json", {"shards": shards}, fsync=fsync)


def parse_record(line: bytes) -> dict[str, Any] | None:
    """The record on one shard line, or None if it is not a JSON object with a string id.

    orjson first (fast); json for what orjson refuses but the writer may have written
    (``NaN``, from its json fallback for records orjson cannot write), so a valid
    record is never taken for garbage."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return None
    if isinstance(record, dict) and isinstance(record.get("id"), str):
        return record
    return None


def rewrite_lines(path: Path, keep: Callable[[int, bytes], bool]) -> int:
    """Rewrite ``path`` (durably, see the module docstring) with the lines for which
    ``keep(offset, line)`` is true; returns how many were dropped, and leaves the file
    untouched if none is."""
    with path.open("rb") as fh:
        dropped = sum(not keep(offset, line) for offset, line in _lines(fh))
    if dropped:
        with path.open("rb") as fh:
            kept = (line for offset, line in _lines(fh) if keep(offset, line))
            write_atomically(path, kept, sync_dir=True, one_writer=True)
    return dropped


def lines_with_offsets(path: Path) -> Iterable[tuple[int, bytes]]:
    """Each line of ``path`` (newline kept) with its byte offset, streamed."""
    with path.open("rb") as fh:
        yield from _lines(fh)


def _lines(fh: Any) -> Iterable[tuple[int, bytes]]:
    offset = 0
    for line in fh:
        yield offset, line
        offset += len(line)
