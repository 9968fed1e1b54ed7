"""Read a dataset (a file or a glob of JSONL / JSON / CSV files) as numbered rows.

Every worker walks the same ordered list of rows and parses only its own slice
(row index modulo the number of workers): admission needs no coordinator, and a
row's number is stable across runs, so resume can skip what is done.

Two kinds of bad input, two outcomes:

* a bad *row* (unparseable, not an object, ragged CSV, missing a required field,
  or holding a value the hot path cannot carry) becomes a :class:`RowError`:
  recorded in ``_errors.jsonl``, never fatal. :func:`parse_row` is the one place
  that decides validity, so the launcher's task count (:func:`count_rows`) and the
  workers' admission (:func:`iter_rows`) always agree;
* a whole *file* that cannot be read (corrupt gzip stream, invalid ``.json``
  document, UTF-16 text, unreadable CSV header) raises :class:`DatasetError`,
  which :func:`check_dataset` surfaces before anything is launched.

Rows are rejected at read time, not on the hot path: a row that msgpack cannot
encode (an integer wider than 64 bits, a lone surrogate, nesting past msgpack's
limit of 511) would otherwise crash every worker that admits, journals or hands
it off, again after each restart.
"""

from __future__ import annotations

import codecs
import csv
import glob
import gzip
import json
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from matrixhpc.codec import pack


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
    """The dataset as a whole cannot be read (no files, unsupported format, corrupt file)."""


class RowProblem(ValueError):
    """Why one row cannot become a task (the reason recorded in ``_errors.jsonl``)."""


SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".csv")

MAX_DEPTH = 100
"""Deepest nesting a row may have. msgpack (wire and journal) stops at 511 levels and
orjson (output shards) at 255, and the workflow wraps the row in a few more levels
(frame, task, state); 100 leaves room for all of that and for any real dataset."""

_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack can encode
_UTF16_32_BOMS = (
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)
_READ_ERRORS = (OSError, EOFError, zlib.error)  # gzip raises all three on a corrupt stream


class _TooWide:
    """Stands for a JSON integer too long to convert: int() refuses > 4300 digits with a
    ValueError that would fail the whole ``.json`` document instead of one row."""


_TOO_WIDE = _TooWide()


def _parse_int(text: str) -> int | _TooWide:
    return int(text) if len(text) <= 21 else _TOO_WIDE  # 2**64 has 20 digits, plus a sign


_DECODER = json.JSONDecoder(parse_int=_parse_int)


@dataclass(slots=True)
class _Parsed:
    """A row already decoded (an element of a ``.json`` document)."""

    value: Any


@dataclass(slots=True)
class _CsvRecord:
    header: list[str]
    fields: list[str]


@dataclass(slots=True)
class _Unreadable:
    """A row the file reader could not even split (e.g. a CSV field over the size limit)."""

    reason: str


Raw = bytes | _Parsed | _CsvRecord | _Unreadable


# ------------------------------------------------------------------ files


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


def _refuse_utf16(path: Path, head: bytes) -> None:
    if head.startswith(_UTF16_32_BOMS):
        raise DatasetError(f"dataset.path: {path} is UTF-16/32 text; save it as UTF-8")


def _jsonl_lines(path: Path) -> Iterator[tuple[int, Raw]]:
    """Bytes per line: one line with a bad encoding is one bad row, not a bad file."""
    with _open(path) as fh:
        for n, line in enumerate(fh, start=1):
            if n == 1:
                _refuse_utf16(path, line)
                line = line.removeprefix(codecs.BOM_UTF8)
            if line.strip():
                yield n, line


def _json_elements(path: Path) -> Iterator[tuple[int, Raw]]:
    """A ``.json`` file is one document: if it does not parse, no row of it can be read."""
    data = path.read_bytes()
    _refuse_utf16(path, data)
    try:
        doc = _DECODER.decode(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"dataset.path: {path} is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise DatasetError(
            f"dataset.path: {path} is not readable JSON: nested too deeply"
        ) from None
    except ValueError as exc:
        raise DatasetError(f"dataset.path: {path} is not valid JSON: {exc}") from None
    rows = doc if isinstance(doc, list) else [doc]
    yield from ((n, _Parsed(r)) for n, r in enumerate(rows, start=1))


def _csv_header(path: Path, reader: Iterator[list[str]]) -> list[str]:
    try:
        header = next((r for r in reader if r), [])
    except csv.Error as exc:
        raise DatasetError(f"dataset.path: {path}: unreadable CSV header: {exc}") from None
    if any(_not_utf8(name) for name in header):
        raise DatasetError(f"dataset.path: {path}: the CSV header is not UTF-8")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DatasetError(
            f"dataset.path: {path}: duplicate CSV column(s): {', '.join(duplicates)}"
        )
    return header


def _csv_records(path: Path) -> Iterator[tuple[int, Raw]]:
    """Records as field lists under the header; undecodable bytes are kept as surrogates
    (``surrogateescape``) so that they fail their own row, not the whole file."""
    with path.open("rb") as fh:
        _refuse_utf16(path, fh.read(4))
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        header = _csv_header(path, reader)
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, _Unreadable(f"unreadable CSV record: {exc}")
                continue
            if fields:  # a blank line
                yield start, _CsvRecord(header, fields)


def _file_rows(path: Path) -> Iterator[tuple[int, Raw]]:
    if path.name.endswith(".csv"):
        return _csv_records(path)
    if path.name.endswith(".json"):
        return _json_elements(path)
    return _jsonl_lines(path)


def _raw_rows(path: Path) -> Iterator[tuple[int, Raw]]:
    """(line number, raw row) for each non-blank row; a read error fails the whole file."""
    line = 0
    try:
        for line, raw in _file_rows(path):
            yield line, raw
    except _READ_ERRORS as exc:
        where = f" after line {line}" if line else ""
        raise DatasetError(f"dataset.path: {path} cannot be read{where}: {_why(exc)}") from None


def _why(exc: BaseException) -> str:
    if isinstance(exc, zlib.error | EOFError | gzip.BadGzipFile):
        return f"corrupt or truncated gzip data ({exc})"
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


def _dataset_rows(pattern: str, limit: int | None) -> Iterator[tuple[int, Path, int, Raw]]:
    """(index, file, line, raw row) over every file, stopping after ``limit`` rows."""
    index = 0
    for path in expand_paths(pattern):
        if limit is not None and index >= limit:
            return  # a file past the limit is not even opened: it cannot fail the run
        for line, raw in _raw_rows(path):
            yield index, path, line, raw
            index += 1
            if limit is not None and index >= limit:
                return


# ------------------------------------------------------------------ rows


def _not_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _decode_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowProblem(f"not UTF-8 at byte {exc.start}") from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RowProblem(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowProblem("invalid JSON: nested too deeply to parse") from None


def _from_csv(record: _CsvRecord) -> dict[str, Any]:
    if len(record.fields) != len(record.header):
        raise RowProblem(
            f"CSV record has {len(record.fields)} field(s), the header has {len(record.header)}"
        )
    return dict(zip(record.header, record.fields, strict=True))


def _to_value(raw: Raw) -> Any:
    if isinstance(raw, bytes):
        return _decode_json(raw)
    if isinstance(raw, _CsvRecord):
        return _from_csv(raw)
    if isinstance(raw, _Unreadable):
        raise RowProblem(raw.reason)
    return raw.value


def _check_scalar(value: Any) -> None:
    if value is _TOO_WIDE or (isinstance(value, int) and not _INT_MIN <= value <= _INT_MAX):
        raise RowProblem("an integer does not fit in 64 bits (store it as a string)")
    if isinstance(value, float) and not math.isfinite(value):
        raise RowProblem("a number is NaN or infinite (not valid JSON)")


def _check_values(data: dict[str, Any]) -> None:
    """A bounded walk (depth first, no recursion): depth, integer range, finite floats."""
    stack: list[tuple[Iterable[Any], int]] = [(data.values(), 1)]
    while stack:
        children, depth = stack.pop()
        for value in children:
            if isinstance(value, dict | list):
                if depth >= MAX_DEPTH:
                    raise RowProblem(f"nested deeper than {MAX_DEPTH} levels")
                stack.append((value.values() if isinstance(value, dict) else value, depth + 1))
            elif not isinstance(value, str):  # most values: nothing to check
                _check_scalar(value)


def _check_encodable(data: dict[str, Any]) -> None:
    """Encode it as the codec will (wire frames, journal): whatever msgpack refuses here
    would otherwise crash a worker later, on every restart."""
    try:
        pack(data)
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise RowProblem(f"a text value is not valid UTF-8 ({bad!r})") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise RowProblem(f"cannot be encoded: {exc}") from None


def parse_row(raw: Raw, required: Iterable[str] = ()) -> dict[str, Any]:
    """The row as a dict, or :class:`RowProblem` saying why it cannot become a task.

    The single definition of a valid row: admission and counting both call it."""
    data = _to_value(raw)
    if not isinstance(data, dict):
        raise RowProblem(f"a row must be a JSON object, not {_type_name(data)}")
    missing = [f for f in required if f not in data]
    if missing:
        raise RowProblem(f"missing required field(s): {', '.join(missing)}")
    _check_values(data)
    _check_encodable(data)
    return data


def _type_name(value: Any) -> str:
    return "int" if value is _TOO_WIDE else type(value).__name__


def iter_rows(
    pattern: str,
    *,
    limit: int | None = None,
    shard: tuple[int, int] = (0, 1),
    required: Iterable[str] | None = None,
) -> Iterator[Row | RowError]:
    """Rows of slice ``shard = (i, n)`` among the first ``limit`` rows of the dataset."""
    i, n = shard
    fields = list(required or [])
    for index, path, line, raw in _dataset_rows(pattern, limit):
        if index % n == i:
            try:
                yield Row(index, str(path), line, parse_row(raw, fields))
            except RowProblem as exc:
                yield RowError(index, str(path), line, str(exc))


def tally_rows(
    pattern: str, limit: int | None = None, required: Iterable[str] | None = None
) -> tuple[int, int]:
    """(valid rows, bad rows) among the first ``limit``: exactly what admission will see."""
    good = bad = 0
    for item in iter_rows(pattern, limit=limit, required=required):
        if isinstance(item, Row):
            good += 1
        else:
            bad += 1
    return good, bad


def count_rows(
    pattern: str, limit: int | None = None, required: Iterable[str] | None = None
) -> int:
    """Rows that will become tasks (bad rows excluded): the progress bar's denominator."""
    return tally_rows(pattern, limit, required)[0]


def check_dataset(pattern: str, limit: int | None = None) -> None:
    """Raise :class:`DatasetError` (naming the file and the reason) if any file of the
    dataset cannot be read up to ``limit`` rows; bad rows are not an error here.

    Called before launch, so that a corrupt file fails ``matrixhpc run`` at once
    instead of every worker after the LLM servers have started."""
    for _ in _dataset_rows(pattern, limit):
        pass
