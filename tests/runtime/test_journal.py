"""The journal: group-committed, checksummed segments; torn tails; corruption skipped
and reported; sticky, loud write failures; compaction."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import struct
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.writers import ShardWriter
from matrixhpc.runtime import journal as journal_mod
from matrixhpc.runtime.journal import DURABILITY, Journal, JournalError
from matrixhpc.runtime.segments import FRAME, MAGIC, SEGMENT_HEADER

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
    assert data.startswith(SEGMENT_HEADER)
    out, offset = [], len(SEGMENT_HEADER)
    while offset < len(data):
        magic, length, _ = FRAME.unpack_from(data, offset)
        assert magic.to_bytes(4, "little") == MAGIC
        out.append((offset, length))
        offset += FRAME.size + length
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
    assert seen
    assert seen[0] == (0, 0)
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
        assert shard_inode not in spy.inodes
        assert segment_inode not in spy.inodes
    else:
        assert calls[:2] == ["shard", "closed"]
        assert shard_inode in spy.inodes
        assert segment_inode in spy.inodes
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
    body = last + FRAME.size
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
        struct.pack_into("<I", buf, last + 8, zlib.crc32(data[body:]) ^ 1)
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
    assert got == []
    assert journal.stats["torn"] == 0


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
    assert len(after) == 1
    assert after[0] not in before
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


# ------------------------------------------------------------- mid-segment corruption


async def _one_segment(directory: Path, count: int) -> tuple[Path, list[list[Any]]]:
    """A closed journal of ``count`` records in one segment."""
    records: list[list[Any]] = [[f"r{i}", i, "payload " * (i % 5)] for i in range(count)]
    journal = Journal(directory, "off", commit_interval=0.001)
    journal.open()
    for record in records:
        journal.append(record)
    await journal.close()
    (segment,) = journal.segments()
    return segment, records


def _damage(data: bytes, offset: int, how: str) -> bytes:
    """Damage the record framed at ``offset``."""
    buf = bytearray(data)
    if how == "flip-body":
        buf[offset + FRAME.size + 2] ^= 0x5A
    elif how == "length-longer":  # the length now reaches into the next records
        struct.pack_into("<I", buf, offset + 4, FRAME.unpack_from(data, offset)[1] + 37)
    elif how == "length-shorter":
        struct.pack_into("<I", buf, offset + 4, 3)
    elif how == "length-huge":  # past the end of the file
        struct.pack_into("<I", buf, offset + 4, 2**31)
    elif how == "magic":
        buf[offset] ^= 0xFF
    else:
        assert how == "zeroed"  # a run of zeros across this record and into the next
        end = offset + FRAME.size + FRAME.unpack_from(data, offset)[1] + 5
        buf[offset + 3 : end] = bytes(end - offset - 3)
    return bytes(buf)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "how", ["flip-body", "length-longer", "length-shorter", "length-huge", "magic", "zeroed"]
)
async def test_a_bad_record_mid_segment_is_skipped_and_the_rest_kept(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "j"
    segment, records = await _one_segment(directory, 12)
    frames = _frames(segment)
    data = _damage(segment.read_bytes(), frames[5][0], how)
    segment.write_bytes(data)
    lost = {5, 6} if how == "zeroed" else {5}
    good = [r for i, r in enumerate(records) if i not in lost]

    journal = Journal(directory, "off", commit_interval=0.001)
    with caplog.at_level("WARNING"):
        assert list(journal.replay()) == good
    assert segment.read_bytes() == data  # nothing cut, nothing rewritten
    assert (journal.stats["corrupt"], journal.stats["torn"]) == (1, 0)
    start = frames[5][0]
    assert journal.stats["corrupt_at"] == [
        f"{segment.name}@{start}+{frames[7 if how == 'zeroed' else 6][0] - start}"
    ]
    assert f"{segment.name}@{start}" in caplog.text
    assert "corrupt" in caplog.text

    journal.open()  # and it goes on
    journal.append(["after"])
    await journal.close()
    assert _replay(directory)[0] == [*good, ["after"]]


@pytest.mark.asyncio
async def test_corruption_in_an_older_segment_and_a_torn_tail_in_the_last(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "j"
    last_segment = await _two_sessions(directory)
    first_segment = Journal(directory).segments()[0]
    first = first_segment.read_bytes()
    first_segment.write_bytes(_damage(first, _frames(first_segment)[0][0], "length-longer"))
    data = last_segment.read_bytes()
    last_segment.write_bytes(data + data[len(SEGMENT_HEADER) : len(SEGMENT_HEADER) + 15])

    got, journal = _replay(directory)
    assert got == [
        ["r1", {"k": "v"}],
        ["r2"],
        ["r3", "x" * 40],
        ["r4", "the last record", [1, 2, 3]],
    ]
    assert (journal.stats["corrupt"], journal.stats["torn"]) == (1, 1)
    assert first_segment.stat().st_size == len(first)  # the older segment is never cut
    assert last_segment.read_bytes() == data  # the torn tail (nothing valid after it) is


@pytest.mark.asyncio
async def test_a_damaged_segment_header_keeps_the_records(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    segment, records = await _one_segment(directory, 4)
    data = bytearray(segment.read_bytes())
    data[1] ^= 0x01
    segment.write_bytes(bytes(data))
    got, journal = _replay(directory)
    assert got == records
    assert journal.stats["corrupt_at"] == [f"{segment.name}@0+{len(SEGMENT_HEADER)}"]


@pytest.mark.parametrize("content", [b"", b"\xc1MJS", bytes(300)])
def test_an_empty_cut_or_zeroed_segment_is_a_torn_tail(tmp_path: Path, content: bytes) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    segment = directory / "seg-00000001.log"
    segment.write_bytes(content)
    got, journal = _replay(directory)
    assert got == []
    assert journal.stats["torn"] == (1 if content else 0)
    assert segment.stat().st_size == 0


def _format_1(records: list[list[Any]]) -> bytes:
    """A segment as matrixhpc wrote it before format 2: ``u32 length | u32 crc | body``."""
    from matrixhpc.codec import pack

    bodies = [pack(r) for r in records]
    return b"".join(struct.pack("<II", len(b), zlib.crc32(b)) + b for b in bodies)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (_format_1([[1, "t-0"], [6, "t-0"]]), "format 1"),
        (SEGMENT_HEADER[:-1] + b"\x07" + b"anything", "version 7"),
    ],
)
def test_a_segment_of_another_format_is_refused_not_cut(
    tmp_path: Path, content: bytes, match: str
) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    segment = directory / "seg-00000001.log"
    segment.write_bytes(content)
    with pytest.raises(JournalError, match=match) as caught:
        list(Journal(directory).replay())
    assert caught.value.path == segment
    assert str(segment) in str(caught.value)
    assert segment.read_bytes() == content


# ------------------------------------------------------------- write failures


class FailingWrite:
    """Replaces journal._write_group: call ``fail_at`` (1-based) writes half of its data
    for real, then raises ``OSError(code)`` (a disk that filled up mid-group). With
    ``gate`` it first waits for the gate (to let commits pile up on the group)."""

    def __init__(self, real: Callable[..., None], fail_at: int, code: int = 28) -> None:
        self.real = real
        self.fail_at = fail_at
        self.code = code
        self.calls = 0
        self.started = threading.Event()
        self.gate: threading.Event | None = None

    def __call__(self, fd: int, data: bytes, fsync: bool, fds: list[int]) -> None:
        self.calls += 1
        if self.calls != self.fail_at:
            self.real(fd, data, fsync, fds)
            return
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        os.write(fd, data[: len(data) // 2])
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_a_write_error_is_sticky_loud_and_cuts_the_partial_group(
    tmp_path: Path, mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    failing = FailingWrite(journal_mod._write_group, fail_at=2)
    failing.gate = threading.Event()
    monkeypatch.setattr(journal_mod, "_write_group", failing)
    directory = tmp_path / "j"
    journal = Journal(directory, mode, commit_interval=0.001)
    journal.open()
    supervisor = asyncio.create_task(journal.failed())
    journal.append(["r0"])
    journal.append(["r1"])
    await journal.commit()
    (segment,) = journal.segments()
    assert not supervisor.done()
    good_size = segment.stat().st_size
    journal.append(["r2", "x" * 200])
    first = asyncio.create_task(journal.commit())
    assert await asyncio.to_thread(failing.started.wait, 5)
    journal.append(["r3"])  # appended while the failing group is being written
    second = asyncio.create_task(journal.commit())
    # the second commit waits for the next group; the journal has no event for that point
    while journal._committed is None:  # noqa: ASYNC110
        await asyncio.sleep(0)
    with caplog.at_level("ERROR"):
        failing.gate.set()
        async with asyncio.timeout(5):  # before the fix: waits forever
            results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        assert isinstance(result, JournalError)
        assert result.path == segment
        assert isinstance(result.cause, OSError)
        assert result.cause.errno == errno.ENOSPC
    assert journal.error is not None
    assert str(segment) in journal.error
    assert "No space left on device" in journal.error
    assert "ENOSPC" in journal.error
    assert journal.stats["error"] == journal.error
    assert str(segment) in caplog.text
    assert journal.stats["unwritten"] == 2  # kept, not dropped
    assert str(await asyncio.wait_for(supervisor, 1)) == journal.error
    assert segment.stat().st_size == good_size  # the half-written group is cut off
    with pytest.raises(JournalError):
        await journal.commit()
    with pytest.raises(JournalError):
        journal.append(["r4"])
    with pytest.raises(JournalError):
        await journal.close()
    assert journal._fd == -1  # closed all the same

    monkeypatch.setattr(journal_mod, "_write_group", failing.real)  # space freed: resume
    resumed = Journal(directory, mode, commit_interval=0.001)
    assert list(resumed.replay()) == [["r0"], ["r1"]]
    assert resumed.stats["torn"] == 0
    resumed.open()
    resumed.append(["r2 again"])
    await resumed.commit()
    await resumed.close()
    assert _replay(directory)[0] == [["r0"], ["r1"], ["r2 again"]]


@pytest.mark.asyncio
async def test_a_partial_group_that_cannot_be_cut_is_a_torn_tail_on_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(journal_mod, "_write_group", FailingWrite(journal_mod._write_group, 2))
    monkeypatch.setattr(os, "ftruncate", no_truncate)
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.001)
    journal.open()
    journal.append(["r0"])
    await journal.commit()
    journal.append(["r1", "y" * 100])
    with pytest.raises(JournalError):
        await journal.commit()
    with pytest.raises(JournalError):
        await journal.close()
    monkeypatch.undo()
    got, again = _replay(tmp_path / "j")
    assert got == [["r0"]]
    assert again.stats["torn"] == 1


class FailingFsync:
    """os.fsync that fails with EIO for one descriptor."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fd: int) -> None:
        self.fd = fd
        self._real = os.fsync
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        if fd == self.fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self._real(fd)


@pytest.mark.asyncio
async def test_an_output_fsync_error_names_the_output_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = (tmp_path / "part-w0-00000.jsonl").open("wb")
    FailingFsync(monkeypatch, shard.fileno())
    journal = Journal(tmp_path / "j", "batch", commit_interval=0.001)
    journal.sync_fds.append(shard.fileno)
    journal.open()
    journal.append(["r0"])
    try:
        with pytest.raises(JournalError) as caught:
            await journal.commit()
        with pytest.raises(JournalError):
            await journal.close()
    finally:
        shard.close()
    assert caught.value.path == tmp_path / "part-w0-00000.jsonl"
    assert "EIO" in str(caught.value)
    assert journal.segments()[0].stat().st_size == 0  # nothing written before the output


@pytest.mark.asyncio
async def test_a_failing_pre_write_hook_is_sticky_and_named(tmp_path: Path) -> None:
    def flush_output() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    journal = Journal(tmp_path / "j", "off", commit_interval=0.001)
    journal.pre_write.append(flush_output)
    journal.open()
    journal.append(["r0"])
    with pytest.raises(JournalError, match="flush_output") as caught:
        await journal.commit()
    assert caught.value.path == tmp_path / "j"
    assert journal.error is not None
    assert "ENOSPC" in journal.error
    with pytest.raises(JournalError):
        await journal.close()
    assert _replay(tmp_path / "j")[0] == []


def _snapshot_bug() -> list[list[Any]]:
    raise KeyError("held")


@pytest.mark.asyncio
@pytest.mark.parametrize("fault", ["write", "snapshot"])
async def test_a_failed_compaction_keeps_the_old_segments_and_the_group(
    tmp_path: Path, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "j"
    journal = Journal(directory, "batch", commit_interval=0.001, segment_bytes=200)
    if fault == "write":
        monkeypatch.setattr(journal_mod, "_write_group", FailingWrite(journal_mod._write_group, 2))
        journal.snapshot = lambda: [["SNAP", "z" * 100]]
    else:
        journal.snapshot = _snapshot_bug
    journal.open()
    records = [["record", i, "y" * 20] for i in range(10)]
    for record in records:
        journal.append(record)
    await journal.commit()  # the group is on disk: committed, though compaction failed
    assert journal.stats["compactions"] == 0
    assert journal.failure is not None
    assert journal.error is not None
    expected = "journal compaction failed (No space" if fault == "write" else "(KeyError: 'held')"
    assert expected in journal.failure.reason
    with pytest.raises(JournalError):
        await journal.commit()
    with pytest.raises(JournalError):
        await journal.close()
    monkeypatch.undo()
    assert _replay(directory)[0] == records  # the old segment was not deleted


@pytest.mark.asyncio
async def test_open_fails_loudly_when_no_segment_can_be_created(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "seg-00000001.log").mkdir()  # the name is taken by a directory
    journal = Journal(directory, "off")
    with pytest.raises(JournalError, match=r"seg-00000001\.log"):
        journal.open()
    assert journal.error is not None


@contextlib.contextmanager
def _tiny_tmpfs(directory: Path, size: str) -> Iterator[Path]:
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        # lazily: a descriptor still open (a failed test) must not leave it mounted
        subprocess.run(["umount", "--lazy", str(directory)], check=True)


@pytest.mark.asyncio
async def test_a_full_tmpfs_fails_loudly_and_resumes_once_space_is_freed(tmp_path: Path) -> None:
    with _tiny_tmpfs(tmp_path / "fs", "64k") as fs:
        filler = fs / "filler"
        filler.write_bytes(bytes(32 * 1024))
        directory = fs / "j"
        journal = Journal(directory, "batch", commit_interval=0.001)
        journal.open()
        committed: list[list[Any]] = []

        async def fill() -> None:
            async with asyncio.timeout(10):
                for i in range(1000):
                    record = [i, "x" * 1500]
                    journal.append(record)
                    await journal.commit()
                    committed.append(record)

        with pytest.raises(JournalError) as caught:
            await fill()
        assert caught.value.path == journal.segments()[0]
        assert "ENOSPC" in str(caught.value)
        with pytest.raises(JournalError):
            await journal.close()
        filler.unlink()  # space freed: a resume replays what was committed and goes on
        resumed = Journal(directory, "batch", commit_interval=0.001)
        assert list(resumed.replay()) == committed
        assert resumed.stats["torn"] == 0
        resumed.open()
        resumed.append(["after"])
        await resumed.commit()
        await resumed.close()
        assert _replay(directory)[0] == [*committed, ["after"]]


@pytest.mark.asyncio
async def test_a_record_marker_inside_a_damaged_body_is_not_taken_for_a_record(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "j"
    fake = MAGIC + struct.pack("<II", 4, zlib.crc32(b"nope") ^ 1) + b"nope"
    records: list[list[Any]] = [["r0"], ["r1", b"abc" + fake + b"tail"], ["r2"]]
    journal = Journal(directory, "off", commit_interval=0.001)
    journal.open()
    for record in records:
        journal.append(record)
    await journal.close()
    (segment,) = journal.segments()
    segment.write_bytes(_damage(segment.read_bytes(), _frames(segment)[1][0], "length-huge"))
    got, again = _replay(directory)
    assert got == [["r0"], ["r2"]]
    assert again.stats["corrupt"] == 1
    assert again.stats["torn"] == 0
