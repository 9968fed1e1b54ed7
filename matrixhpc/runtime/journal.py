"""The checkpointed queue of one worker: append-only segments of checksummed records.

Frame: ``u32 length | u32 crc32 | msgpack body``, little-endian. A crash mid-write
leaves a torn record at the tail of the last segment; replay detects it (short
read or bad checksum), truncates the segment back to the last good record and
goes on — a torn tail is expected, not fatal.

Durability (group commit: records appended by many tasks are written together):

- ``off``    records reach the OS every ``commit_interval``; no fsync. Survives
             a killed process, not a node crash. Fastest.
- ``batch``  the same groups, each fsync'ed (journal and output shards). Survives
             a node crash; costs one fsync per group, not per record. Default.
- ``strict`` the worker waits for the fsync of every step before the next one:
             nothing after the last journaled turn is ever redone. Slowest.

Whatever the mode, an ACK is sent only after the record it acknowledges has
been committed, so a hand-off is never lost between two workers.

Compaction: when the segments outgrow ``segment_bytes`` (and four times the last
snapshot), a new segment is started with a snapshot of the live state (supplied
by the worker), made durable, and the older segments are deleted. Replaying old
segments followed by a snapshot gives the same state, so a crash mid-compaction
is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import zlib
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from matrixhpc.codec import CodecError, pack, unpack

HEADER = struct.Struct("<II")
DURABILITY = ("off", "batch", "strict")


class Journal:
    def __init__(
        self,
        directory: Path,
        durability: str = "batch",
        *,
        commit_interval: float = 0.005,
        segment_bytes: int = 64 * 2**20,
    ) -> None:
        if durability not in DURABILITY:
            raise ValueError(f"durability must be one of {DURABILITY}, not {durability!r}")
        self.dir = directory
        self.durability = durability
        self.commit_interval = 0.0 if durability == "strict" else commit_interval
        self.segment_bytes = segment_bytes
        self.dir.mkdir(parents=True, exist_ok=True)
        self._buffer = bytearray()
        self._pending = 0  # records in the buffer
        self._fd = -1
        self._seq = 0
        self._size = 0  # bytes in all live segments
        self._snapshot_size = 0
        self._wake = asyncio.Event()
        self._committed: asyncio.Future[None] | None = None  # the next group
        self._writing: asyncio.Future[None] | None = None  # the group being written
        self._closing = False
        self._stop = asyncio.Event()  # cuts the commit-interval wait short on close
        self._flusher: asyncio.Task[None] | None = None
        self.pre_write: list[Callable[[], None]] = []  # e.g. flush output shards first
        self.sync_fds: list[Callable[[], int]] = []  # fds fsync'ed with each group
        self.snapshot: Callable[[], list[list[Any]]] | None = None
        self.stats = {"records": 0, "groups": 0, "bytes": 0, "compactions": 0, "torn": 0}

    # ------------------------------------------------------------- replay

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("seg-*.log"))

    def replay(self) -> Iterator[list[Any]]:
        """Every good record, oldest first; torn tails are cut off the last segment."""
        segments = self.segments()
        for i, path in enumerate(segments):
            good = yield from _read_segment(path)
            size = path.stat().st_size
            if good < size:
                self.stats["torn"] += 1
                if i == len(segments) - 1:
                    with path.open("r+b") as fh:
                        fh.truncate(good)
        if segments:
            self._seq = int(segments[-1].stem.split("-")[1])
            self._size = sum(p.stat().st_size for p in self.segments())

    # ------------------------------------------------------------- writing

    def open(self) -> None:
        """Start a fresh segment for this process (replayed ones stay until compaction)."""
        self._new_segment()
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    def _new_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._seq += 1
        path = self.dir / f"seg-{self._seq:08d}.log"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, record: list[Any]) -> None:
        body = pack(record)
        self._buffer += HEADER.pack(len(body), zlib.crc32(body)) + body
        self._pending += 1
        if not self._wake.is_set():
            self._wake.set()

    async def commit(self) -> None:
        """Return once everything appended so far is committed (per the durability),
        including records of a group that is being written right now."""
        if self._buffer:
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._committed)
        elif self._writing is not None:
            await asyncio.shield(self._writing)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            if self.commit_interval and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.commit_interval)
            await self._flush_once()
            if self._closing and not self._buffer:
                return

    async def _flush_once(self) -> None:
        self._wake.clear()
        waiter = self._committed or asyncio.get_running_loop().create_future()
        self._committed = None
        self._writing = waiter
        data, self._buffer = bytes(self._buffer), bytearray()
        count, self._pending = self._pending, 0
        try:
            for hook in self.pre_write:
                hook()
            if data:
                fsync = self.durability != "off"
                fds = [get() for get in self.sync_fds] if fsync else []
                await asyncio.to_thread(_write_group, self._fd, data, fsync, fds)
                self._size += len(data)
                self.stats["records"] += count
                self.stats["groups"] += 1
                self.stats["bytes"] += len(data)
            if self._size > max(self.segment_bytes, 4 * self._snapshot_size):
                await self._compact()
        except BaseException as exc:
            if not waiter.done():
                waiter.set_exception(exc)
            raise
        finally:
            self._writing = None
        if not waiter.done():
            waiter.set_result(None)

    async def _compact(self) -> None:
        if self.snapshot is None:
            return
        old = self.segments()
        self._new_segment()
        records = self.snapshot()  # taken in the loop: consistent with the buffer swap
        data = b"".join(HEADER.pack(len(b), zlib.crc32(b)) + b for b in (pack(r) for r in records))
        await asyncio.to_thread(_write_group, self._fd, data, True, [])
        for path in old:
            path.unlink(missing_ok=True)
        self._size = self._snapshot_size = len(data)
        self.stats["compactions"] += 1

    async def close(self) -> None:
        """Commit what is buffered, let a group being written finish, stop the flusher.

        The flusher is asked to stop rather than cancelled: cancelling it mid-write
        would close the descriptor under the writing thread and lose the group."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._buffer or self._committed is not None:
            await self._flush_once()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_group(fd: int, data: bytes, fsync: bool, other_fds: list[int]) -> None:
    for other in other_fds:
        if other >= 0:
            os.fsync(other)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if fsync:
        os.fsync(fd)


def _read_segment(path: Path) -> Generator[list[Any], None, int]:
    """Yield records; return the offset of the end of the last good one."""
    data = path.read_bytes()
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        body = data[start : start + length]
        if len(body) < length or zlib.crc32(body) != crc:
            return offset
        try:
            record = unpack(body)
        except CodecError:
            return offset
        if not isinstance(record, list) or not record:
            return offset
        yield record
        offset = start + length
    return offset
