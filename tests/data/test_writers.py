"""Output shards (and their durability), the per-worker index, the error log, the manifest."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.manifest import ERRORS, MANIFEST, build_manifest, merge_errors
from matrixhpc.data.writers import ERRORS_DIR, INDEX_DIR, ErrorLog, ShardWriter
from matrixhpc.runtime.journal import Journal


def _rec(i: int, status: str = "ok") -> dict[str, Any]:
    return {"id": f"t{i}", "status": status, "text": f"ünï {i}"}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_shards_roll_at_shard_records(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w3", shard_records=2)
    for i in range(5):
        w.write(_rec(i, "ok" if i != 3 else "failed"))
    w.close()
    files = sorted(p.name for p in tmp_path.glob("part-*.jsonl"))
    assert files == ["part-w3-00000.jsonl", "part-w3-00001.jsonl", "part-w3-00002.jsonl"]
    assert [[r["id"] for r in _lines(tmp_path / f)] for f in files] == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4"],
    ]
    assert w.shards == [
        {"file": "part-w3-00000.jsonl", "records": 2, "ok": 2, "failed": 0},
        {
            "file": "part-w3-00001.jsonl",
            "records": 2,
            "ok": 1,
            "failed": 1,
            "errors": {"(no message)": 1},
        },
        {"file": "part-w3-00002.jsonl", "records": 1, "ok": 1, "failed": 0},
    ]


def test_exact_multiple_does_not_open_an_empty_shard(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=3)
    for i in range(6):
        w.write(_rec(i))
    w.close()
    assert len(list(tmp_path.glob("part-*.jsonl"))) == 2
    assert [s["records"] for s in w.shards] == [3, 3]


def test_nothing_written_means_no_shard_file(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / "out", "w0", shard_records=10)
    assert (tmp_path / "out").is_dir()
    w.close()
    assert list((tmp_path / "out").glob("part-*")) == []
    index = json.loads((tmp_path / "out" / INDEX_DIR / "w0.json").read_text())
    assert index == {"shards": []}


def test_records_are_utf8_json_lines(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=10)
    w.write({"id": "x", "status": "ok", "text": "日本 ü", "path": Path("/a")})
    w.close()
    raw = (tmp_path / "part-w0-00000.jsonl").read_text(encoding="utf-8")
    assert "日本 ü" in raw  # not \\u-escaped
    assert raw.endswith("\n")
    assert raw.count("\n") == 1
    assert json.loads(raw)["path"] == "/a"  # unknown types become strings


def test_index_file_is_refreshed_by_write_index(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w1", shard_records=2)
    index_path = tmp_path / INDEX_DIR / "w1.json"
    w.write(_rec(0))
    w.flush()
    # flush makes the data readable before close, but only flushes the file
    assert [r["id"] for r in _lines(tmp_path / "part-w1-00000.jsonl")] == ["t0"]
    assert not index_path.exists()
    w.write_index()
    assert json.loads(index_path.read_text())["shards"] == [
        {"file": "part-w1-00000.jsonl", "records": 1, "ok": 1, "failed": 0}
    ]
    w.write(_rec(1, "failed"))
    w.write(_rec(2))
    w.flush()
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(1, 1, 0)]  # not yet
    w.write_index()
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(2, 1, 1), (1, 1, 0)]
    # write_index flushes the data it indexes
    assert [r["id"] for r in _lines(tmp_path / "part-w1-00001.jsonl")] == ["t2"]
    w.write(_rec(3))
    w.close()  # close writes the index too
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(2, 1, 1), (2, 2, 0)]


def test_close_is_idempotent(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=10)
    w.write(_rec(0))
    w.close()
    w.close()
    assert len(_lines(tmp_path / "part-w0-00000.jsonl")) == 1


def test_error_log_is_lazy_and_counts(tmp_path: Path) -> None:
    log = ErrorLog(tmp_path, "w2")
    log.flush()
    log.close()
    assert not (tmp_path / ERRORS_DIR).exists()  # no errors, no file
    log = ErrorLog(tmp_path, "w2")
    log.write({"source": "a.jsonl", "line": 3, "index": 2, "reason": "invalid JSON"})
    log.write({"source": "a.jsonl", "line": 9, "index": 8, "reason": "missing"})
    log.flush()
    assert log.count == 2
    assert log.path == tmp_path / ERRORS_DIR / "w2.jsonl"
    assert [e["line"] for e in _lines(log.path)] == [3, 9]
    log.close()
    log.close()


def _worker_output(out: Path, name: str, statuses: list[str], errors: int) -> None:
    w = ShardWriter(out, name, shard_records=2)
    for i, status in enumerate(statuses):
        w.write(_rec(i, status))
    w.close()
    log = ErrorLog(out, name)
    for i in range(errors):
        log.write({"source": "d.jsonl", "line": i + 1, "worker": name, "reason": "bad"})
    log.close()


def test_build_manifest_counts_and_merges_errors(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok", "ok", "failed"], errors=2)
    _worker_output(out, "w1", ["ok", "failed", "failed", "ok", "ok"], errors=0)
    _worker_output(out, "w2", [], errors=1)
    manifest = build_manifest(out, name="coral", config_hash="abc123", state="finished")
    assert manifest["name"] == "coral"
    assert manifest["config_hash"] == "abc123"
    assert manifest["state"] == "finished"
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (8, 5, 3)
    assert manifest["row_errors"] == 3
    assert [s["file"] for s in manifest["shards"]] == [
        "part-w0-00000.jsonl",
        "part-w0-00001.jsonl",
        "part-w1-00000.jsonl",
        "part-w1-00001.jsonl",
        "part-w1-00002.jsonl",
    ]
    assert sum(s["records"] for s in manifest["shards"]) == 8
    assert json.loads((out / MANIFEST).read_text()) == manifest
    merged = _lines(out / ERRORS)
    assert [(e["worker"], e["line"]) for e in merged] == [("w0", 1), ("w0", 2), ("w2", 1)]


def test_manifest_agrees_with_the_data(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok"] * 7, errors=0)
    manifest = build_manifest(out, name="n", config_hash="h")
    on_disk = sum(len(_lines(out / s["file"])) for s in manifest["shards"])
    assert on_disk == manifest["records"] == 7


def test_manifest_can_be_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok", "failed"], errors=1)
    first = build_manifest(out, name="n", config_hash="h")
    second = build_manifest(out, name="n", config_hash="h")
    assert (second["records"], second["row_errors"]) == (first["records"], first["row_errors"])
    assert len(_lines(out / ERRORS)) == 1  # merged again, not appended twice


def test_manifest_of_an_empty_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    manifest = build_manifest(out, name="n", config_hash="h")
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (0, 0, 0)
    assert manifest["row_errors"] == 0
    assert manifest["shards"] == []
    assert (out / ERRORS).read_text() == ""


def test_manifest_ignores_a_garbage_index(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok"], errors=0)
    (out / INDEX_DIR / "broken.json").write_text("{half")
    assert build_manifest(out, name="n", config_hash="h")["records"] == 1


def test_merge_errors_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / ERRORS_DIR).mkdir()
    (tmp_path / ERRORS_DIR / "w1.jsonl").write_text('{"b": 1}\n\n')
    (tmp_path / ERRORS_DIR / "w0.jsonl").write_text('{"a": 1}\n')
    assert merge_errors(tmp_path) == 2
    assert (tmp_path / ERRORS).read_text() == '{"a": 1}\n{"b": 1}\n'


# ------------------------------------------------------------- durability of rolled shards


class FsyncSpy:
    """Records (inode, size, thread) of every fsync, then does it for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[int, int, str]] = []
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        st = os.fstat(fd)
        self.calls.append((st.st_ino, st.st_size, threading.current_thread().name))
        self._real(fd)

    def inodes(self) -> list[int]:
        return [inode for inode, _, _ in self.calls]


def test_a_shard_that_rolls_is_flushed_and_fsynced_before_it_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    w = ShardWriter(tmp_path, "w0", shard_records=2)
    w.write(_rec(0))
    w.write(_rec(1))
    first = tmp_path / "part-w0-00000.jsonl"
    assert first.stat().st_ino not in spy.inodes()  # still open: the journal's groups sync it
    w.write(_rec(2))  # rolls
    st = first.stat()
    assert (st.st_ino, st.st_size) in [(i, s) for i, s, _ in spy.calls]  # all of it, on disk
    assert st.st_size == len((tmp_path / "part-w0-00000.jsonl").read_bytes()) > 0
    # the new shard's directory entry is durable too, before the journal vouches for it
    assert spy.inodes().count(tmp_path.stat().st_ino) == 2  # one per shard created
    w.close()
    assert (tmp_path / "part-w0-00001.jsonl").stat().st_ino in spy.inodes()  # and on close


def test_a_writer_that_is_not_durable_never_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    w = ShardWriter(tmp_path, "w0", shard_records=1, durable=False)
    for i in range(3):
        w.write(_rec(i))
    w.close()
    assert spy.calls == []
    assert len(list(tmp_path.glob("part-*.jsonl"))) == 3


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_fd_lent_for_fsync_outlives_a_roll_and_is_closed_later(tmp_path: Path) -> None:
    baseline = _open_fds()
    w = ShardWriter(tmp_path, "w0", shard_records=1)
    assert w.fileno() == -1  # nothing open yet
    w.write(_rec(0))
    lent = w.fileno()
    first = (tmp_path / "part-w0-00000.jsonl").stat().st_ino
    w.write(_rec(1))  # rolls: part 0 is closed by the writer...
    w.write(_rec(2))  # ...and a third file opened: it must not get the lent number's file
    assert os.fstat(lent).st_ino == first  # ...but the lent fd still is part 0
    os.fsync(lent)
    for _ in range(5):  # the next groups: each returns the previous loan
        again = w.fileno()
    assert os.fstat(again).st_ino == (tmp_path / "part-w0-00002.jsonl").stat().st_ino
    assert _open_fds() == baseline + 2  # the open shard and one loan, however many groups
    w.close()
    assert _open_fds() == baseline  # nothing leaked


@pytest.mark.asyncio
async def test_a_roll_while_the_journal_fsyncs_the_shard_does_not_close_it_underneath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal fsyncs ``writer.fileno()`` in a thread while the loop goes on writing."""
    w = ShardWriter(tmp_path / "out", "w0", shard_records=1)
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.001)
    journal.pre_write.append(w.flush)
    journal.sync_fds.append(w.fileno)
    inside, release = threading.Event(), threading.Event()
    real = os.fsync
    synced: list[int] = []

    def fsync(fd: int) -> None:
        if threading.current_thread() is not threading.main_thread():
            if not inside.is_set():
                inside.set()  # the journal's thread holds the shard's fd: hold it there
                release.wait(10)
            synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    journal.open()
    w.write(_rec(0))
    journal.append(["done", "t0"])
    group = asyncio.create_task(journal.commit())
    assert await asyncio.to_thread(inside.wait, 10)
    first = (tmp_path / "out" / "part-w0-00000.jsonl").stat().st_ino
    w.write(_rec(1))  # rolls while the fsync thread holds part 0's fd
    w.write(_rec(2))  # rolls again: a new file that could take the freed fd number
    release.set()
    await asyncio.wait_for(group, 10)  # the group succeeds...
    assert synced[0] == first  # ...and synced the shard it was handed, not another
    journal.append(["done", "t1"])
    await journal.commit()
    await journal.close()
    w.close()
    assert len(list((tmp_path / "out").glob("part-*.jsonl"))) == 3
