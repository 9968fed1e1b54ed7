"""The journal: group-committed, checksummed segments; torn tails; compaction."""

from __future__ import annotations

import asyncio
import os
import struct
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.writers import ShardWriter
from matrixhpc.runtime import journal as journal_mod
from matrixhpc.runtime.journal import DURABILITY, HEADER, Journal

MODES = ["off", "batch", "strict"]

RECORDS: list[list[Any]] = [
    [1, "t-0", 123456789, 0, {"q": "¿π?", "n": [1, 2.5, None]}, 1700000000.5],
    [2, ["t-1", 1, {"x": b"\x00\xff"}]],
    [3, "t-1", 4, {"role": "a", "content": "日本"}, {}, "__end__", "ok", None, 2.0],
    [6, "t-0"],
    [True, False, -1, 2**62],
]


def _replay(directory: Path) -> tuple[list[list[Any]], Journal]:
    journal = Journal(directory)
    return list(journal.replay()), journal


def _frames(path: Path) -> list[tuple[int, int]]:
    """(offset, length of body) of every record in a segment."""
    data = path.read_bytes()
    out, offset = [], 0
    while offset < len(data):
        length, _ = HEADER.unpack_from(data, offset)
        out.append((offset, length))
        offset += HEADER.size + length
    return out


class FsyncSpy:
    """Wraps os.fsync, recording the inode of each descriptor synced, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inodes: list[int] = []
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        self.inodes.append(os.fstat(fd).st_ino)
        self._real(fd)


class GatedWrite:
    """Replaces journal._write_group: the first group blocks until ``release`` is set.

    If the journal's descriptor was closed while the write was blocked the write is
    skipped (recorded in ``fd_closed``) instead of going to whatever file reuses it.
    """

    def __init__(self, real: Callable[..., None]) -> None:
        self.real = real
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.fd_closed = False

    def __call__(self, fd: int, data: bytes, fsync: bool, fds: list[int]) -> None:
        inode = os.fstat(fd).st_ino
        self.started.set()
        self.release.wait(10)
        try:
            same = os.fstat(fd).st_ino == inode
        except OSError:
            same = False
        try:
            if same:
                self.real(fd, data, fsync, fds)
            else:
                self.fd_closed = True
        finally:
            self.finished.set()


# ------------------------------------------------------------- round trips


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_append_commit_replay_round_trip(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    journal = Journal(tmp_path / "j", mode, commit_interval=0.002)
    journal.open()
    for record in RECORDS[:3]:
        journal.append(record)
    await journal.commit()
    assert journal.stats["records"] == 3
    for record in RECORDS[3:]:
        journal.append(record)
    await journal.commit()
    await journal.close()
    assert journal.stats["records"] == len(RECORDS)
    assert journal.stats["bytes"] == sum(p.stat().st_size for p in journal.segments())
    got, again = _replay(tmp_path / "j")
    assert got == RECORDS
    assert again.stats["torn"] == 0
    segment_inode = journal.segments()[0].stat().st_ino
    if mode == "off":
        assert segment_inode not in spy.inodes  # reaches the OS, never fsync'ed
    else:
        assert spy.inodes.count(segment_inode) >= 2  # one fsync per committed group


@pytest.mark.asyncio
async def test_strict_commits_without_waiting_for_an_interval(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "strict", commit_interval=60.0)
    assert journal.commit_interval == 0.0
    journal.open()
    try:
        journal.append(["x"])
        async with asyncio.timeout(5.0):  # not 60 s (commit runs inline: no extra task)
            await journal.commit()
    finally:
        await journal.close()
    assert _replay(tmp_path / "j")[0] == [["x"]]


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_close_writes_records_appended_after_the_last_commit(
    tmp_path: Path, mode: str
) -> None:
    journal = Journal(tmp_path / "j", mode, commit_interval=0.002)
    journal.open()
    journal.append(["first"])
    await journal.commit()
    journal.commit_interval = 60.0  # the flusher now sleeps long before the next group
    journal.append(["second"])
    journal.append(["third"])
    await asyncio.sleep(0.01)
    await journal.close()
    assert _replay(tmp_path / "j")[0] == [["first"], ["second"], ["third"]]


@pytest.mark.asyncio
async def test_commit_waits_for_the_group_and_returns_at_once_when_idle(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "batch", commit_interval=60.0)
    journal.open()
    try:
        await asyncio.wait_for(journal.commit(), 0.5)  # nothing appended: no waiting
        journal.append(["a"])
        waiting = asyncio.create_task(journal.commit())
        await asyncio.sleep(0.1)
        assert not waiting.done()  # the group is not due for 60 s
    finally:
        await journal.close()  # close commits it
    await asyncio.wait_for(waiting, 1.0)
    assert _replay(tmp_path / "j")[0] == [["a"]]


@pytest.mark.asyncio
async def test_appends_before_a_commit_form_one_group(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.002)
    journal.open()
    for i in range(50):
        journal.append([i])
    await journal.commit()
    assert (journal.stats["records"], journal.stats["groups"]) == (50, 1)
    await journal.close()
    assert _replay(tmp_path / "j")[0] == [[i] for i in range(50)]


@pytest.mark.parametrize("durability", ["", "fsync", "BATCH", "none"])
def test_invalid_durability(tmp_path: Path, durability: str) -> None:
    with pytest.raises(ValueError, match="durability"):
        Journal(tmp_path / "j", durability)
    assert DURABILITY == ("off", "batch", "strict")


# ------------------------------------------------------------- hooks


@pytest.mark.asyncio
async def test_pre_write_hooks_run_before_each_group(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.002)
    writer = ShardWriter(tmp_path / "out", "w0", shard_records=100)
    seen: list[tuple[int, int]] = []

    def hook() -> None:
        writer.flush()
        seen.append((journal.stats["groups"], journal.segments()[-1].stat().st_size))

    journal.open()
    journal.pre_write.append(hook)
    writer.write({"id": "t0", "status": "ok"})  # buffered in the writer
    journal.append(["done", "t0"])
    await journal.commit()
    assert seen and seen[0] == (0, 0)  # before the group hit the segment
    # the output the journal record vouches for reached the file with the group
    assert (tmp_path / "out" / "part-w0-00000.jsonl").read_text().startswith('{"id":"t0"')
    size = journal.segments()[-1].stat().st_size
    journal.append(["done", "t1"])
    await journal.commit()
    assert seen[-1] == (1, size)
    await journal.close()
    writer.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_sync_fds_are_fsynced_before_the_group(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = FsyncSpy(monkeypatch)
    other = (tmp_path / "shard").open("wb")
    calls: list[str] = []

    def shard_fd() -> int:
        calls.append("shard")
        return other.fileno()

    def closed_fd() -> int:
        calls.append("closed")
        return -1  # e.g. no shard open yet: skipped

    journal = Journal(tmp_path / "j", mode, commit_interval=0.002)
    journal.sync_fds += [shard_fd, closed_fd]
    journal.open()
    try:
        journal.append(["x"])
        await journal.commit()
    finally:
        await journal.close()
        other.close()
    shard_inode = (tmp_path / "shard").stat().st_ino
    segment_inode = journal.segments()[0].stat().st_ino
    if mode == "off":
        assert shard_inode not in spy.inodes and segment_inode not in spy.inodes
    else:
        assert calls[:2] == ["shard", "closed"]
        assert shard_inode in spy.inodes and segment_inode in spy.inodes
        assert spy.inodes.index(shard_inode) < spy.inodes.index(segment_inode)


# ------------------------------------------------------------- torn tails


async def _two_sessions(directory: Path) -> Path:
    """Session 1 writes r0 r1; session 2 replays them and writes r2 r3 r4 (last segment)."""
    first = Journal(directory, "batch", commit_interval=0.002)
    first.open()
    first.append(["r0"])
    first.append(["r1", {"k": "v"}])
    await first.close()
    second = Journal(directory, "batch", commit_interval=0.002)
    assert list(second.replay()) == [["r0"], ["r1", {"k": "v"}]]
    second.open()
    for r in (["r2"], ["r3", "x" * 40], ["r4", "the last record", [1, 2, 3]]):
        second.append(r)
    await second.close()
    segments = second.segments()
    assert len(segments) == 2
    return segments[-1]


def _cut(data: bytes, last: int, length: int, how: str) -> bytes:
    body = last + HEADER.size
    if how == "cut-header":
        return data[: last + 3]
    if how == "cut-body":
        return data[: body + length // 2]
    if how == "flip-body":
        buf = bytearray(data)
        buf[body + length // 2] ^= 0x40
        return bytes(buf)
    if how == "bad-crc":
        buf = bytearray(data)
        struct.pack_into("<I", buf, last + 4, zlib.crc32(data[body:]) ^ 1)
        return bytes(buf)
    assert how == "garbage-after"
    return data + b"\x07\x00\x00\x00junk"


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["cut-header", "cut-body", "flip-body", "bad-crc", "garbage-after"])
async def test_torn_tail_is_cut_and_the_journal_keeps_working(tmp_path: Path, how: str) -> None:
    directory = tmp_path / "j"
    last_segment = await _two_sessions(directory)
    first_segment = Journal(directory).segments()[0]
    first_bytes = first_segment.read_bytes()
    data = last_segment.read_bytes()
    last, length = _frames(last_segment)[-1]
    last_segment.write_bytes(_cut(data, last, length, how))
    good = [["r0"], ["r1", {"k": "v"}], ["r2"], ["r3", "x" * 40]]
    if how == "garbage-after":
        good.append(["r4", "the last record", [1, 2, 3]])
        last = len(data)

    journal = Journal(directory, "batch", commit_interval=0.002)
    assert list(journal.replay()) == good
    assert journal.stats["torn"] == 1
    assert last_segment.stat().st_size == last  # cut back to the last good record
    assert first_segment.read_bytes() == first_bytes  # older segments are left alone

    journal.open()  # and it goes on: a new segment after the repaired one
    journal.append(["after"])
    await journal.commit()
    await journal.close()
    got, again = _replay(directory)
    assert got == [*good, ["after"]]
    assert again.stats["torn"] == 0


def test_replay_of_an_empty_directory(tmp_path: Path) -> None:
    got, journal = _replay(tmp_path / "j")
    assert got == [] and journal.stats["torn"] == 0


# ------------------------------------------------------------- compaction


@pytest.mark.asyncio
async def test_compaction_replaces_old_segments_with_a_snapshot(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    old = Journal(directory, "batch", commit_interval=0.002)
    old.open()
    old.append(["from", "a previous process"])
    await old.close()

    journal = Journal(directory, "batch", commit_interval=0.002, segment_bytes=300)
    assert list(journal.replay()) == [["from", "a previous process"]]
    snapshot = [["SNAP", 1, {"live": True}], ["SNAP", 2]]
    journal.snapshot = lambda: snapshot
    journal.open()
    before = set(journal.segments())
    assert len(before) == 2
    for i in range(20):
        journal.append(["record", i, "y" * 20])
    await journal.commit()
    assert journal.stats["compactions"] == 1
    after = journal.segments()
    assert len(after) == 1 and after[0] not in before  # every older segment deleted
    journal.append(["late"])
    await journal.commit()
    await journal.close()
    assert journal.stats["compactions"] == 1  # the snapshot alone is below the threshold
    got, _ = _replay(directory)
    assert got == [*snapshot, ["late"]]


@pytest.mark.asyncio
async def test_no_snapshot_no_compaction(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "off", commit_interval=0.002, segment_bytes=50)
    journal.open()
    for i in range(20):
        journal.append([i, "z" * 10])
        await journal.commit()
    await journal.close()
    assert journal.stats["compactions"] == 0
    assert _replay(tmp_path / "j")[0] == [[i, "z" * 10] for i in range(20)]


# ------------------------------------------------------------- groups in flight


@pytest.mark.asyncio
async def test_commit_waits_for_a_group_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = GatedWrite(journal_mod._write_group)
    monkeypatch.setattr(journal_mod, "_write_group", gate)
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.001)
    journal.open()
    try:
        journal.append(["a"])
        first = asyncio.create_task(journal.commit())
        assert await asyncio.to_thread(gate.started.wait, 5)
        second = asyncio.create_task(journal.commit())  # "a" was appended before this call
        await asyncio.sleep(0.05)
        returned_early = second.done()
        gate.release.set()
        await asyncio.wait_for(asyncio.gather(first, second), 5)
    finally:
        gate.release.set()
        await journal.close()
    assert not returned_early, "commit() returned while its record was still being written"


@pytest.mark.asyncio
async def test_strict_commit_from_another_task_waits_for_the_record(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j", "strict")
    journal.open()
    try:
        await asyncio.sleep(0)  # the flusher now waits for records
        journal.append(["a"])
        committing = asyncio.create_task(journal.commit())  # runs after the flusher wakes
        await asyncio.wait_for(committing, 5)
        durable = journal.stats["records"]
    finally:
        await asyncio.sleep(0.1)
        await journal.close()
    assert durable == 1, "commit() returned before the record was written"


@pytest.mark.asyncio
async def test_close_waits_for_a_group_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = GatedWrite(journal_mod._write_group)
    monkeypatch.setattr(journal_mod, "_write_group", gate)
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.001)
    journal.open()
    journal.append(["a"])
    waiter = asyncio.create_task(journal.commit())
    try:
        assert await asyncio.to_thread(gate.started.wait, 5)
        closing = asyncio.create_task(journal.close())
        await asyncio.sleep(0.05)
    finally:
        gate.release.set()
    await asyncio.wait_for(closing, 5)
    assert await asyncio.to_thread(gate.finished.wait, 5)
    results = await asyncio.gather(waiter, return_exceptions=True)
    assert not gate.fd_closed, "the segment fd was closed under the write"
    assert _replay(tmp_path / "j")[0] == [["a"]]
    assert list(results) == [None]
