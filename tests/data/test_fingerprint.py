"""The input fingerprint: resuming on changed data is refused, so it must change with it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from matrixhpc.data.fingerprint import input_fingerprint
from matrixhpc.data.readers import DatasetError


def _dataset(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.jsonl").write_text('{"q": 1}\n{"q": 2}\n')
    (root / "b.jsonl").write_text('{"q": 3}\n')
    return str(root / "*.jsonl")


def test_stable(tmp_path: Path) -> None:
    pattern = _dataset(tmp_path / "d")
    first = input_fingerprint(pattern)
    assert first == input_fingerprint(pattern)
    assert len(first) == 16
    assert int(first, 16) >= 0
    # the same data elsewhere: the fingerprint is about content, not location
    assert input_fingerprint(_dataset(tmp_path / "copy")) == first


def test_changes_when_content_changes(tmp_path: Path) -> None:
    pattern = _dataset(tmp_path)
    before = input_fingerprint(pattern)
    (tmp_path / "b.jsonl").write_text('{"q": 4}\n')  # same size, one byte differs
    after = input_fingerprint(pattern)
    assert after != before
    (tmp_path / "b.jsonl").write_text('{"q": 3}\n')
    assert input_fingerprint(pattern) == before


def test_changes_when_a_file_is_added_to_the_glob(tmp_path: Path) -> None:
    pattern = _dataset(tmp_path)
    before = input_fingerprint(pattern)
    (tmp_path / "c.jsonl").write_text("")  # even an empty file
    assert input_fingerprint(pattern) != before
    (tmp_path / "c.jsonl").unlink()
    assert input_fingerprint(pattern) == before
    (tmp_path / "notes.txt").write_text("not matched by the glob")
    assert input_fingerprint(pattern) == before


def test_changes_when_a_file_is_renamed_or_removed(tmp_path: Path) -> None:
    pattern = _dataset(tmp_path)
    before = input_fingerprint(pattern)
    (tmp_path / "b.jsonl").rename(tmp_path / "z.jsonl")
    renamed = input_fingerprint(pattern)
    assert renamed != before
    (tmp_path / "z.jsonl").unlink()
    assert input_fingerprint(pattern) not in (before, renamed)


def test_moving_rows_between_files_changes_it(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("1\n2\n")
    (tmp_path / "b.jsonl").write_text("3\n")
    before = input_fingerprint(str(tmp_path / "*.jsonl"))
    (tmp_path / "a.jsonl").write_text("1\n")
    (tmp_path / "b.jsonl").write_text("2\n3\n")
    assert input_fingerprint(str(tmp_path / "*.jsonl")) != before


def test_a_single_file_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"q": 1}\n', mtime=0))
    first = input_fingerprint(str(path))
    assert first == input_fingerprint(str(path))
    path.write_bytes(gzip.compress(b'{"q": 2}\n', mtime=0))
    assert input_fingerprint(str(path)) != first


def test_no_match_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError):
        input_fingerprint(str(tmp_path / "*.jsonl"))


def test_unreadable_file_is_a_dataset_error_naming_it(tmp_path: Path) -> None:
    # a real read error even as root: /proc/self/mem is a regular file that fails with EIO
    (tmp_path / "a.jsonl").write_text('{"q": 1}\n')
    (tmp_path / "b.jsonl").symlink_to("/proc/self/mem")
    with pytest.raises(DatasetError, match=r"b\.jsonl cannot be read"):
        input_fingerprint(str(tmp_path / "*.jsonl"))
