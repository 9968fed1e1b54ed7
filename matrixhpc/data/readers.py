"""Read a dataset (a file or a glob of JSONL / JSON / CSV files) as numbered rows.

Every worker walks the same ordered list of rows and parses only its own slice
(row index modulo the number of workers): admission needs no coordinator, and a
row's number is stable across runs, so resume can skip what is done. A line that
does not parse or lacks a required field becomes a :class:`RowError` — recorded,
never fatal.
"""

from __future__ import annotations

import csv
import glob
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(slots=True)
class Row:
    index: int
    source: str
    line: int
    data: dict[str, Any]


@dataclass(slots=True)
class RowError:
    index: int
    source: str
    line: int
    reason: str

    def to_record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "line": self.line,
            "index": self.index,
            "reason": self.reason,
        }


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (no files, unsupported format)."""


SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".csv")


def expand_paths(pattern: str) -> list[Path]:
    paths = (
        sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
    )
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise DatasetError(f"dataset.path: no file matches {pattern!r}")
    for p in paths:
        if not p.name.endswith(SUFFIXES):
            raise DatasetError(f"dataset.path: {p} is not one of {', '.join(SUFFIXES)}")
    return paths


def _open(path: Path) -> IO[bytes]:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes | str | dict[str, Any]]]:
    """(line number, raw text or already-parsed row) for each non-blank row."""
    if path.name.endswith(".csv"):
        with path.open(newline="", encoding="utf-8") as fh:
            for n, record in enumerate(csv.DictReader(fh), start=2):
                yield n, dict(record)
        return
    if path.name.endswith(".json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DatasetError(f"dataset.path: {path} is not valid JSON: {exc}") from None
        rows = data if isinstance(data, list) else [data]
        yield from ((n, r if isinstance(r, dict) else json.dumps(r)) for n, r in enumerate(rows, 1))
        return
    with _open(path) as fh:  # bytes: one line with a bad encoding is one bad row
        for n, line in enumerate(fh, start=1):
            if line.strip():
                yield n, line


def _parse(raw: bytes | str | dict[str, Any], required: list[str]) -> dict[str, Any]:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"not UTF-8 at byte {exc.start}") from None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"a row must be a JSON object, not {type(raw).__name__}")
    missing = [f for f in required if f not in raw]
    if missing:
        raise ValueError(f"missing required field(s): {', '.join(missing)}")
    return raw


def iter_rows(
    pattern: str,
    *,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    required: list[str] | None = None,
) -> Iterator[Row | RowError]:
    """Rows of slice ``shard = (i, n)`` among the first ``limit`` rows of the dataset."""
    i, n = shard
    index = 0
    for path in expand_paths(pattern):
        for line, raw in _raw_lines(path):
            if limit is not None and index >= limit:
                return
            if index % n == i:
                try:
                    yield Row(index, str(path), line, _parse(raw, required or []))
                except ValueError as exc:
                    yield RowError(index, str(path), line, str(exc))
            index += 1


def count_rows(pattern: str, limit: int | None = None) -> int:
    total = 0
    for path in expand_paths(pattern):
        for _ in _raw_lines(path):
            if limit is not None and total >= limit:
                return total
            total += 1
    return total
