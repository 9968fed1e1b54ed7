"""Bad input never stops a run: a bad row is a RowError with a reason, a file that
cannot be read at all is a DatasetError (naming it) before launch, and whatever is
admitted can travel the hot path (msgpack frames, journal, output)."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.codec import FrameType, decode, encode_task
from matrixhpc.data.readers import (
    MAX_DEPTH,
    DatasetError,
    Row,
    RowError,
    check_dataset,
    count_rows,
    iter_rows,
    tally_rows,
)
from matrixhpc.task import Task


def _items(path: Path, **kw: Any) -> list[Row | RowError]:
    return list(iter_rows(str(path), **kw))


def _one_bad_line(tmp_path: Path, line: str, name: str = "d.jsonl") -> RowError:
    """``line`` between two good rows: exactly it is an error, the good rows come through."""
    path = tmp_path / name
    path.write_text('{"a": 1}\n' + line + '\n{"a": 3}\n', encoding="utf-8")
    items = _items(path)
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "Row"], items
    err = items[1]
    assert isinstance(err, RowError)
    assert err.line == 2
    assert err.index == 1
    assert count_rows(str(path)) == 2
    return err


def _nested(depth: int) -> str:
    """A row whose value is ``depth - 1`` nested lists (the row object is level 1)."""
    return '{"x": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


# ------------------------------------------------------------- rows msgpack cannot carry


def test_ten_thousand_levels_of_nesting_is_a_row_error(tmp_path: Path) -> None:
    err = _one_bad_line(tmp_path, _nested(10_000))
    assert "nested too deeply" in err.reason


def test_nesting_that_parses_but_exceeds_the_limit_is_a_row_error(tmp_path: Path) -> None:
    err = _one_bad_line(tmp_path, _nested(MAX_DEPTH + 1))
    assert f"deeper than {MAX_DEPTH}" in err.reason


def test_nesting_up_to_the_limit_is_accepted_and_encodes(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(_nested(MAX_DEPTH) + "\n" + '{"m": ' + '{"k": ' * 99 + "1" + "}" * 100 + "\n")
    rows = _items(path)
    assert all(isinstance(r, Row) for r in rows)
    assert len(rows) == 2
    for row in rows:
        assert isinstance(row, Row)
        encode_task(Task(id="t", seed=0, row=row.data, origin="w0"))


@pytest.mark.parametrize(
    "text", [str(2**64), str(2**70), str(-(2**63) - 1), "9" * 30, "-" + "7" * 5000]
)
def test_integer_wider_than_64_bits_is_a_row_error(tmp_path: Path, text: str) -> None:
    err = _one_bad_line(tmp_path, '{"n": [1, ' + text + "]}")
    assert "64 bits" in err.reason


@pytest.mark.parametrize("value", [2**64 - 1, -(2**63), 0, -1])
def test_integers_msgpack_can_encode_are_kept(tmp_path: Path, value: int) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"n": value}) + "\n")
    (row,) = _items(path)
    assert isinstance(row, Row)
    assert row.data == {"n": value}


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_row_errors(tmp_path: Path, text: str) -> None:
    err = _one_bad_line(tmp_path, '{"v": {"w": ' + text + "}}")
    assert "NaN or infinite" in err.reason


def test_lone_surrogate_escape_is_a_row_error(tmp_path: Path) -> None:
    err = _one_bad_line(tmp_path, '{"q": "half a pair \\ud800"}')
    assert "UTF-8" in err.reason


def test_json_document_with_one_wide_integer_fails_that_element_only(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"a": 1}, {"a": ' + "9" * 5000 + '}, {"a": 3}]')
    items = _items(path)
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "Row"]
    assert isinstance(items[1], RowError)
    assert "64 bits" in items[1].reason


# ------------------------------------------------------------- CSV


def test_ragged_csv_rows_are_row_errors_not_nulls(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("q,answer\nfine,A\nshort\nlong,B,extra\n\nalso fine,C\n")
    items = _items(path, required=["q", "answer"])
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "RowError", "Row"]
    assert [i.line for i in items] == [2, 3, 4, 6]
    assert isinstance(items[1], RowError)
    assert "1 field(s), the header has 2" in items[1].reason
    assert isinstance(items[2], RowError)
    assert "3 field(s), the header has 2" in items[2].reason
    assert all(None not in i.data.values() for i in items if isinstance(i, Row))


def test_undecodable_csv_byte_fails_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"q,a\nok,1\nbad \xff byte,2\nok too,3\n")
    items = _items(path)
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "Row"]
    assert isinstance(items[1], RowError)
    assert "UTF-8" in items[1].reason
    assert items[1].line == 3


def test_csv_record_over_the_field_size_limit_fails_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("q,a\nok,1\n" + "z" * 200_000 + ",2\nok too,3\n")
    items = _items(path)
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "Row"]
    assert isinstance(items[1], RowError)
    assert "field limit" in items[1].reason


def test_multiline_csv_record_keeps_its_first_line_number(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('q,a\n"two\nlines",1\nnext,2\n')
    assert [(i.line, type(i).__name__) for i in _items(path)] == [(2, "Row"), (4, "Row")]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"q,q\n1,2\n", "duplicate CSV column"), (b"q,\xff\n1,2\n", "header is not UTF-8")],
)
def test_unusable_csv_header_is_a_dataset_error(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=reason) as exc:
        check_dataset(str(path))
    assert str(path) in str(exc.value)


# ------------------------------------------------------------- byte order marks


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv", "d.jsonl.gz"])
def test_utf8_bom_is_accepted(tmp_path: Path, name: str) -> None:
    body = {
        "d.jsonl": '{"q": "x"}\n{"q": "y"}\n',
        "d.json": '[{"q": "x"}, {"q": "y"}]',
        "d.csv": "q\nx\ny\n",
        "d.jsonl.gz": '{"q": "x"}\n{"q": "y"}\n',
    }[name]
    data = codecs.BOM_UTF8 + body.encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    items = _items(path, required=["q"])
    assert [i.data for i in items if isinstance(i, Row)] == [{"q": "x"}, {"q": "y"}], items


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv"])
def test_utf16_file_is_a_dataset_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text('{"q": "x"}\n' if name != "d.csv" else "q\nx\n", encoding="utf-16")
    with pytest.raises(DatasetError, match="UTF-16"):
        check_dataset(str(path))


# ------------------------------------------------------------- files that cannot be read


def _gzip_rows(n: int) -> bytes:
    return gzip.compress(b"".join(b'{"i": %d, "pad": "%s"}\n' % (i, b"x" * 50) for i in range(n)))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:40] + bytes(x ^ 0xFF for x in b[40:60]) + b[60:],  # corrupt deflate data
        lambda b: b[: len(b) // 2],  # truncated stream
        lambda b: b[:-8] + bytes(8),  # bad CRC / size trailer
        lambda b: b"not gzip at all\n",
    ],
    ids=["corrupt", "truncated", "bad-crc", "not-gzip"],
)
def test_corrupt_gzip_is_a_dataset_error_naming_the_file(tmp_path: Path, damage: Any) -> None:
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(damage(_gzip_rows(2000)))
    for call in (
        lambda: check_dataset(str(path)),
        lambda: count_rows(str(path)),
        lambda: _items(path),
    ):
        with pytest.raises(DatasetError, match="gzip") as exc:
            call()
        assert str(path) in str(exc.value)


def test_check_dataset_reads_only_up_to_the_limit(tmp_path: Path) -> None:
    good = tmp_path / "a.jsonl"
    good.write_text('{"i": 0}\n{"i": 1}\n')
    (tmp_path / "b.jsonl.gz").write_bytes(b"not gzip at all\n")
    check_dataset(str(tmp_path / "*"), limit=2)
    with pytest.raises(DatasetError, match=r"b\.jsonl\.gz"):
        check_dataset(str(tmp_path / "*"), limit=3)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('[{"a": 1}, {"a": ', "not valid JSON"),
        ("[" * 10_000 + "]" * 10_000, "nested too deeply"),
        ('[{"a": "\xff"}]', "not UTF-8"),
    ],
)
def test_unreadable_json_document_is_a_dataset_error(
    tmp_path: Path, content: str, reason: str
) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(DatasetError, match=reason) as exc:
        check_dataset(str(path))
    assert str(path) in str(exc.value)


def test_file_that_fails_to_read_is_a_dataset_error(tmp_path: Path) -> None:
    # a real read error as root: /proc/self/mem is a regular file that fails with EIO
    path = tmp_path / "d.jsonl"
    path.symlink_to("/proc/self/mem")
    with pytest.raises(DatasetError, match="cannot be read") as exc:
        check_dataset(str(path))
    assert str(path) in str(exc.value)


def test_bad_rows_are_not_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("{broken\n" + _nested(10_000) + "\n[1]\n")
    check_dataset(str(path))
    assert tally_rows(str(path)) == (0, 3)


# ------------------------------------------------------------- one dataset, every kind


BAD_LINES = {
    "truncated JSON": '{"q": "x", "answer": ',
    "not an object": '["q", "answer"]',
    "missing answer": '{"q": "no answer"}',
    "deep nesting": '{"q": "x", "answer": "A", "d": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "too deep to carry": '{"q": "x", "answer": "A", "d": ' + "[" * 300 + "]" * 300 + "}",
    "wide int": '{"q": "x", "answer": "A", "n": ' + str(2**70) + "}",
    "huge int": '{"q": "x", "answer": "A", "n": ' + "1" * 5000 + "}",
    "NaN": '{"q": "x", "answer": NaN}',
    "lone surrogate": '{"q": "\\udfff", "answer": "A"}',
}


def mixed_dataset(path: Path, good: int) -> Path:
    """``good`` valid rows with every kind of bad line spread among them (a BOM first)."""
    lines = [json.dumps({"q": f"question {i}", "answer": "AB"[i % 2]}) for i in range(good)]
    for k, bad in enumerate(BAD_LINES.values()):
        lines.insert(2 + 3 * k, bad)
    path.write_bytes(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
    return path


def test_every_kind_of_bad_row_is_an_error_and_every_good_row_travels(tmp_path: Path) -> None:
    path = mixed_dataset(tmp_path / "mixed.jsonl", 30)
    items = _items(path, required=["q", "answer"])
    rows = [i for i in items if isinstance(i, Row)]
    errors = [i for i in items if isinstance(i, RowError)]
    assert [r.data["q"] for r in rows] == [f"question {i}" for i in range(30)]
    assert len(errors) == len(BAD_LINES)
    assert all(e.reason for e in errors)
    assert count_rows(str(path), required=["q", "answer"]) == 30
    for row in rows:  # what is admitted can be framed, sent and decoded
        frame = encode_task(Task(id=f"r{row.index}", seed=1, row=row.data, origin="w0"))
        assert decode(frame)[0] is FrameType.TASK
