"""Dataset readers: formats, globs, limits, shards and per-row errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.readers import DatasetError, Row, RowError, count_rows, iter_rows, tally_rows


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _rows(pattern: str | Path, **kw: Any) -> list[Row | RowError]:
    return list(iter_rows(str(pattern), **kw))


def _good(items: list[Row | RowError]) -> list[Row]:
    return [r for r in items if isinstance(r, Row)]


def test_jsonl(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"q": "a"}, {"q": "ü", "n": [1, 2]}])
    rows = _rows(path)
    assert rows == [
        Row(0, str(path), 1, {"q": "a"}),
        Row(1, str(path), 2, {"q": "ü", "n": [1, 2]}),
    ]


def test_json_array_and_single_object(tmp_path: Path) -> None:
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"x": 1}, {"x": 2}, {"x": 3}]))
    assert [(r.index, r.line, r.data) for r in _good(_rows(arr))] == [
        (0, 1, {"x": 1}),
        (1, 2, {"x": 2}),
        (2, 3, {"x": 3}),
    ]
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"x": 9}))
    assert [r.data for r in _good(_rows(one))] == [{"x": 9}]


def test_json_array_element_not_an_object(tmp_path: Path) -> None:
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"x": 1}, 5, ["l"], {"x": 2}]))
    items = _rows(arr)
    assert [type(i).__name__ for i in items] == ["Row", "RowError", "RowError", "Row"]
    err = items[1]
    assert isinstance(err, RowError)
    assert err.line == 2
    assert "JSON object" in err.reason


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('question,answer\nwhat?,A\n"with, comma",B\n', encoding="utf-8")
    rows = _good(_rows(path))
    assert [r.data for r in rows] == [
        {"question": "what?", "answer": "A"},
        {"question": "with, comma", "answer": "B"},
    ]
    assert [r.line for r in rows] == [2, 3]  # line 1 is the header


def test_csv_required_column_missing(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("question\nq1\n", encoding="utf-8")
    (err,) = _rows(path, required=["answer"])
    assert isinstance(err, RowError)
    assert "answer" in err.reason
    assert err.line == 2


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write('{"a": 1}\n\n{"a": "é"}\n')
    rows = _rows(path)
    assert [(r.index, r.line, r.data) for r in _good(rows)] == [
        (0, 1, {"a": 1}),
        (1, 3, {"a": "é"}),
    ]
    assert count_rows(str(path)) == 2


def test_glob_of_files_in_sorted_order_with_continuous_indexes(tmp_path: Path) -> None:
    _jsonl(tmp_path / "part-2.jsonl", [{"f": 2, "k": 0}])
    _jsonl(tmp_path / "part-0.jsonl", [{"f": 0, "k": 0}, {"f": 0, "k": 1}])
    _jsonl(tmp_path / "part-1.jsonl", [{"f": 1, "k": 0}, {"f": 1, "k": 1}, {"f": 1, "k": 2}])
    (tmp_path / "notes.txt").write_text("ignored: the glob does not match it")
    rows = _good(_rows(tmp_path / "part-*.jsonl"))
    assert [r.index for r in rows] == list(range(6))
    assert [(r.data["f"], r.data["k"]) for r in rows] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
        (1, 2),
        (2, 0),
    ]
    assert [Path(r.source).name for r in rows] == ["part-0.jsonl"] * 2 + ["part-1.jsonl"] * 3 + [
        "part-2.jsonl"
    ]
    assert [r.line for r in rows] == [1, 2, 1, 2, 3, 1]  # line numbers are per file
    assert count_rows(str(tmp_path / "part-*.jsonl")) == 6


def test_mixed_formats_in_one_glob(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"v": 1}])
    (tmp_path / "b.csv").write_text("v\n2\n")
    (tmp_path / "c.json").write_text('[{"v": 3}]')
    rows = _good(_rows(tmp_path / "*"))
    assert [r.data["v"] for r in rows] == [1, "2", 3]


def test_unsupported_suffix_in_glob(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"v": 1}])
    (tmp_path / "b.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"b\.txt"):
        _rows(tmp_path / "*")


@pytest.mark.parametrize("limit", [0, 1, 3, 5, 100])
def test_limit(tmp_path: Path, limit: int) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(3)])
    _jsonl(tmp_path / "b.jsonl", [{"i": i} for i in range(3, 5)])
    rows = _good(_rows(tmp_path / "*.jsonl", limit=limit))
    assert [r.data["i"] for r in rows] == list(range(min(limit, 5)))


@pytest.mark.parametrize("limit", [1, 3, 5, 100])
def test_count_rows_with_limit(tmp_path: Path, limit: int) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(5)])
    assert count_rows(str(tmp_path / "a.jsonl"), limit) == min(limit, 5)
    assert count_rows(str(tmp_path / "a.jsonl")) == 5


def test_count_rows_with_limit_zero(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(5)])
    assert count_rows(str(tmp_path / "a.jsonl"), 0) == 0


def test_count_rows_counts_valid_rows_only_not_bad_or_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n   \n{broken\n[1]\n{"a": 2}\n{"b": 3}\n')
    assert count_rows(str(path)) == 3
    assert count_rows(str(path), required=["a"]) == 2
    assert count_rows(str(path), limit=3) == 1  # the limit counts bad rows, as admission does
    assert tally_rows(str(path)) == (3, 2)
    assert len(_rows(path)) == 5


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
def test_shards_partition_the_rows(tmp_path: Path, n: int) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(6)])
    _jsonl(tmp_path / "b.jsonl", [{"i": i} for i in range(6, 11)])
    pattern = tmp_path / "*.jsonl"
    everything = [r.index for r in _good(_rows(pattern))]
    slices = [[r.index for r in _good(_rows(pattern, shard=(i, n)))] for i in range(n)]
    union = sorted(x for s in slices for x in s)
    assert union == everything == list(range(11))  # union is everything, no overlap
    for i, s in enumerate(slices):
        assert s == [x for x in everything if x % n == i]
    sizes = [len(s) for s in slices]
    assert max(sizes) - min(sizes) <= 1


def test_shards_with_limit_partition_the_limited_rows(tmp_path: Path) -> None:
    _jsonl(tmp_path / "a.jsonl", [{"i": i} for i in range(10)])
    slices = [
        [r.index for r in _rows(tmp_path / "a.jsonl", limit=7, shard=(i, 3))] for i in range(3)
    ]
    assert slices == [[0, 3, 6], [1, 4], [2, 5]]


def test_shards_include_errors_of_their_own_rows(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_text('{"i": 0}\n{bad\n{"i": 2}\n{bad\n')
    mine = _rows(path, shard=(1, 2))
    assert [type(r).__name__ for r in mine] == ["RowError", "RowError"]
    assert [r.index for r in mine] == [1, 3]
    assert [type(r).__name__ for r in _rows(path, shard=(0, 2))] == ["Row", "Row"]


def test_bad_rows_become_row_errors_and_good_rows_still_come(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"q": "one", "answer": "A"}',  # line 1
                '{"q": "two", "answer": ',  # 2: truncated JSON
                '["not", "an", "object"]',  # 3
                "",  # 4: blank, skipped
                '{"q": "five"}',  # 5: missing answer
                '{"q": "six", "answer": "B"}',  # 6
                "42",  # 7: a number
            ]
        )
        + "\n"
    )
    items = _rows(path, required=["q", "answer"])
    good = _good(items)
    errors = [r for r in items if isinstance(r, RowError)]
    assert [(r.index, r.line, r.data["q"]) for r in good] == [(0, 1, "one"), (4, 6, "six")]
    assert [(e.index, e.line) for e in errors] == [(1, 2), (2, 3), (3, 5), (5, 7)]
    assert all(e.source == str(path) for e in errors)
    assert "invalid JSON" in errors[0].reason
    assert "column" in errors[0].reason
    assert "JSON object" in errors[1].reason
    assert "list" in errors[1].reason
    assert errors[2].reason == "missing required field(s): answer"
    assert "int" in errors[3].reason
    rec = errors[2].to_record()
    assert rec == {"source": str(path), "line": 5, "index": 3, "reason": errors[2].reason}


def test_missing_several_required_fields_lists_them(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"x": 1}])
    (err,) = _rows(path, required=["a", "x", "b"])
    assert isinstance(err, RowError)
    assert err.reason == "missing required field(s): a, b"


def test_blank_lines_are_skipped_and_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('\n{"a": 1}\n\n\n  \t\n{"a": 2}\n\n')
    rows = _rows(path)
    assert [(r.index, r.line) for r in rows] == [(0, 2), (1, 6)]


def test_no_trailing_newline_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\r\n{"a": 2}')
    assert [r.data for r in _good(_rows(path))] == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("pattern", ["nothing-*.jsonl", "missing.jsonl", "dir"])
def test_no_file_matches(tmp_path: Path, pattern: str) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(DatasetError, match="no file matches"):
        _rows(tmp_path / pattern)
    with pytest.raises(DatasetError):
        count_rows(str(tmp_path / pattern))


def test_single_file_with_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text('{"a": 1}\n')
    with pytest.raises(DatasetError, match="not one of"):
        _rows(path)


def test_rows_are_read_lazily(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "d.jsonl", [{"i": i} for i in range(1000)])
    it = iter_rows(str(path))
    first = next(it)
    assert isinstance(first, Row)
    assert first.index == 0


def test_invalid_utf8_line_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n')
    items = _rows(path)
    assert [type(r).__name__ for r in items] == ["Row", "RowError", "Row"]
    assert items[1].line == 2


def test_broken_json_file_is_a_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"a": 1}, {"a": ')
    with pytest.raises(DatasetError, match=r"d\.json"):
        _rows(path)
