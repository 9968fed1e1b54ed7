"""Atomic writes and create-once files, on real directories."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrixhpc import files
from matrixhpc.files import atomic_write_json, create_once, read_json, write_atomically


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "x.json"
    for i in range(5):
        atomic_write_json(target, {"i": i, "t": time.time()})
    assert read_json(target) == {"i": 4, "t": pytest.approx(time.time(), abs=5)}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_atomic_write_serialises_unknown_types_as_strings(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json(target, {"path": Path("/a/b")})
    assert json.loads(target.read_text()) == {"path": "/a/b"}


def test_read_json_missing_or_garbage_is_none(tmp_path: Path) -> None:
    assert read_json(tmp_path / "nope.json") is None
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert read_json(bad) is None
    undecodable = tmp_path / "u.json"
    undecodable.write_bytes(b"\xff\xff")
    assert read_json(undecodable) is None


def test_a_failed_rename_removes_the_temp_file(tmp_path: Path) -> None:
    """The rename fails (the target is a directory): the error reaches the caller and
    no temp file is left behind to pile up."""
    target = tmp_path / "x.json"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_json(target, {"a": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    target = tmp_path / "shard.jsonl"
    target.write_bytes(b"old\n")

    def chunks() -> Iterator[bytes]:
        yield b"new, half of it\n"
        raise OSError(28, "No space left on device")

    for one_writer in (False, True):
        with pytest.raises(OSError, match="No space left"):
            write_atomically(target, chunks(), sync_dir=True, one_writer=one_writer)
        assert target.read_bytes() == b"old\n"
        assert [p.name for p in tmp_path.iterdir()] == ["shard.jsonl"]


def test_the_temp_file_is_fsynced_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What reaches the target's name is on disk: fsync of the data, then the rename,
    then (``sync_dir``) fsync of the directory that holds the new name; ``fsync=False``
    keeps only the atomic rename."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        events.append("fsync dir" if stat.S_ISDIR(mode) else "fsync file")
        real_fsync(fd)

    def replace(src: Path, dst: Path) -> None:
        events.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert events == ["fsync file", "rename"]
    events.clear()
    atomic_write_json(tmp_path / "a.json", {"a": 2}, sync_dir=True)
    assert events == ["fsync file", "rename", "fsync dir"]
    events.clear()
    atomic_write_json(tmp_path / "a.json", {"a": 3}, fsync=False)  # durability: off
    assert events == ["rename"]
    assert read_json(tmp_path / "a.json") == {"a": 3}


def test_a_single_writer_overwrites_the_leftover_of_a_killed_one(tmp_path: Path) -> None:
    """A writer killed mid-write (SIGKILL: no cleanup runs) leaves its temp file; with
    ``one_writer`` the next write reuses that name instead of adding another."""
    target = tmp_path / "part-w000-00000.jsonl"
    (tmp_path / f".{target.name}.tmp").write_bytes(b"x" * 4096)  # the killed writer's
    write_atomically(target, [b"a\n", b"b\n"], one_writer=True)
    assert target.read_bytes() == b"a\nb\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_create_once_creates_private_then_keeps(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    made: list[bytes] = []

    def make() -> bytes:
        made.append(b"k%d" % len(made))
        return made[-1]

    assert create_once(path, make) == b"k0"
    assert create_once(path, make) == b"k0"
    assert made == [b"k0"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_create_once_loser_of_a_race_reads_the_winners_file(tmp_path: Path) -> None:
    """Another process creates the file while this one is still writing its candidate:
    the name never shows a half-written file, and this one ends with the winner's."""
    path = tmp_path / "secret.key"

    def slow_loser() -> bytes:
        assert not path.exists()  # our candidate is being written: no name yet
        assert create_once(path, lambda: b"winner") == b"winner"  # the other process
        return b"loser"

    assert create_once(path, slow_loser) == b"winner"
    assert path.read_bytes() == b"winner"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
