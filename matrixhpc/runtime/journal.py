"""The checkpointed queue of one worker: append-only segments of checksummed records.

The bytes are :mod:`segments`' (a versioned segment header, then records framed
``magic | length | crc32 | msgpack body``). Replay yields every record that
verifies, oldest first:

- a *torn tail* (a write cut short: nothing valid after it) is expected after a
  crash; it is cut off the last segment and counted in ``stats["torn"]``;
- *corruption* (a bad region with valid records after it, e.g. a flipped bit or
  a damaged length) is skipped: the reader resynchronises on the next record
  marker, the region is left in place, counted in ``stats["corrupt"]``, listed in
  ``stats["corrupt_at"]`` and logged as a warning. Valid data is never deleted;
- a segment of another format raises :class:`JournalError` (nothing is cut).

Durability (group commit: records appended by many tasks are written together):

- ``off``    records reach the OS every ``commit_interval``; no fsync. Survives
             a killed process, not a node crash. Fastest.
- ``batch``  the same groups, each fsync'ed (journal and output shards). Survives
             a node crash; costs one fsync per group, not per record. Default.
- ``strict`` the worker waits for the fsync of every step before the next one:
             nothing after the last journaled turn is ever redone. Slowest.

Whatever the mode, an ACK is sent only after the record it acknowledges has
been committed, so a hand-off is never lost between two workers.

Failures are sticky and loud. When a write, an fsync, a pre-write hook or a
compaction fails (a full disk, an I/O error), the journal:

- cuts the current segment back to the end of its last good group (``ftruncate``),
  so no torn record is left for anything to follow; if even that fails, the
  partial group stays the segment's tail and replay cuts it as a torn tail;
- keeps the failed group and everything appended since in memory, in order
  (``stats["unwritten"]`` records), instead of dropping them;
- takes nothing more: every waiting and every later :meth:`Journal.commit`, every
  later :meth:`Journal.append` and :meth:`Journal.close` raise
  :class:`JournalError` naming the path and the cause; ``Journal.error`` (and
  ``stats["error"]``) hold the message for ``status``; it is logged once.

It refuses further writes rather than retrying: the worker must stop and be
resumed. What was committed is intact (nothing that was ACKed or reported
depends on an uncommitted record), so a resume after the cause is fixed replays
it and redoes the rest.

Compaction: when the segments outgrow ``segment_bytes`` (and four times the last
snapshot), a new segment is started with a snapshot of the live state (supplied
by the worker), made durable, and the older segments are deleted. Replaying old
segments followed by a snapshot gives the same state, so a crash mid-compaction
is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

from matrixhpc.codec import pack
from matrixhpc.runtime.segments import SEGMENT_HEADER, FormatError, Scan, frame, scan

log = logging.getLogger(__name__)

DURABILITY = ("off", "batch", "strict")
MAX_REPORTED = 20  # corrupt regions listed in stats (all are counted)


class JournalError(Exception):
    """The journal cannot go on: ``path`` is the file (or directory) that failed,
    ``reason`` says what and why, ``cause`` is the original exception (an
    ``OSError`` with its ``errno`` for I/O failures). Raised by commit, append and
    close once any write has failed, and by replay for an unreadable segment."""

    def __init__(self, path: Path, reason: str, cause: BaseException | None = None) -> None:
        super().__init__(f"{reason}: {path}")
        self.path = path
        self.reason = reason
        self.cause = cause

    def again(self) -> JournalError:
        """A fresh copy to raise (raising one instance again and again grows its traceback)."""
        copy = JournalError(self.path, self.reason, self.cause)
        copy.__cause__ = self.cause
        return copy


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
        self._path = directory  # the open segment
        self._good = 0  # bytes of the open segment known written: a failed group is cut back here
        self._head = b""  # the segment header, written with the segment's first group
        self._seq = 0
        self._size = 0  # bytes in all live segments
        self._snapshot_size = 0
        self._failure: JournalError | None = None
        self._failed = asyncio.Event()
        self._wake = asyncio.Event()
        self._committed: asyncio.Future[None] | None = None  # the next group
        self._writing: asyncio.Future[None] | None = None  # the group being written
        self._closing = False
        self._stop = asyncio.Event()  # cuts the commit-interval wait short on close
        self._flusher: asyncio.Task[None] | None = None
        self.pre_write: list[Callable[[], None]] = []  # e.g. flush output shards first
        self.sync_fds: list[Callable[[], int]] = []  # fds fsync'ed with each group
        self.snapshot: Callable[[], list[list[Any]]] | None = None
        self.stats: dict[str, Any] = {
            "records": 0,
            "groups": 0,
            "bytes": 0,
            "compactions": 0,
            "torn": 0,
            "corrupt": 0,
            "corrupt_at": [],  # "seg-00000003.log@1234+56": segment, offset, bytes skipped
            "unwritten": 0,
            "error": None,
        }

    @property
    def failure(self) -> JournalError | None:
        """The sticky failure, or None while the journal is healthy."""
        return self._failure

    @property
    def error(self) -> str | None:
        """The failure as one line naming the path and the cause, or None."""
        return None if self._failure is None else str(self._failure)

    async def failed(self) -> JournalError:
        """Wait until the journal fails and return the failure: for a supervisor that
        races it against the run (a worker that has nobody committing still stops)."""
        await self._failed.wait()
        assert self._failure is not None
        return self._failure.again()

    # ------------------------------------------------------------- replay

    def segments(self) -> list[Path]:
        return sorted(self.dir.glob("seg-*.log"))

    def replay(self) -> Iterator[list[Any]]:
        """Every valid record, oldest first; corruption is skipped and reported, torn
        tails are cut off the last segment (see the module docstring)."""
        segments = self.segments()
        for i, path in enumerate(segments):
            yield from self._replay_segment(path, last=i == len(segments) - 1)
        if segments:
            self._seq = int(segments[-1].stem.split("-")[1])
            self._size = sum(p.stat().st_size for p in self.segments())

    def _replay_segment(self, path: Path, *, last: bool) -> Generator[list[Any], None, None]:
        try:
            data = path.read_bytes()
            found = yield from scan(data)
        except FormatError as exc:
            raise JournalError(path, f"unreadable journal segment ({exc})", exc) from exc
        except OSError as exc:
            raise _error(path, "journal replay failed", exc) from exc
        self._report_corruption(path, found)
        if found.end < len(data):
            self.stats["torn"] += 1
            if last:
                _cut_tail(path, found.end, len(data))

    def _report_corruption(self, path: Path, found: Scan) -> None:
        if not found.corrupt:
            return
        self.stats["corrupt"] += len(found.corrupt)
        places = [f"{path.name}@{offset}+{size}" for offset, size in found.corrupt]
        room = MAX_REPORTED - len(self.stats["corrupt_at"])
        self.stats["corrupt_at"] += places[: max(room, 0)]
        log.warning(
            "journal %s: skipped %d corrupt region(s) (%d bytes) at %s; the valid records "
            "after them were kept",
            path,
            len(found.corrupt),
            sum(size for _, size in found.corrupt),
            ", ".join(places[:MAX_REPORTED]),
        )

    # ------------------------------------------------------------- writing

    def open(self) -> None:
        """Start a fresh segment for this process (replayed ones stay until compaction)."""
        try:
            self._new_segment()
        except OSError as exc:
            raise self._fail(_error(self._path, "cannot create a journal segment", exc)) from exc
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    def _new_segment(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._seq += 1
        self._path = self.dir / f"seg-{self._seq:08d}.log"
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._good, self._head = 0, SEGMENT_HEADER

    def append(self, record: list[Any]) -> None:
        if self._failure is not None:
            raise self._failure.again()
        self._buffer += frame(pack(record))
        self._pending += 1
        if not self._wake.is_set():
            self._wake.set()

    async def commit(self) -> None:
        """Return once everything appended so far is committed (per the durability),
        including records of a group that is being written right now; raise
        :class:`JournalError` if the journal failed before or while committing them."""
        if self._failure is not None:
            raise self._failure.again()
        if self._buffer:
            if self._committed is None:
                self._committed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._committed)
        elif self._writing is not None:
            await asyncio.shield(self._writing)

    async def _flush_loop(self) -> None:
        while self._failure is None:
            await self._wake.wait()
            if self.commit_interval and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.commit_interval)
            await self._flush_once()
            if self._closing and not self._buffer:
                return

    async def _flush_once(self) -> None:
        """Write one group; a failure is made sticky here (never raised: the flusher
        must not die silently), and every waiter of the group gets it."""
        self._wake.clear()
        waiter = self._committed or asyncio.get_running_loop().create_future()
        self._committed = None
        self._writing = waiter
        data, self._buffer = bytes(self._buffer), bytearray()
        count, self._pending = self._pending, 0
        written = False
        try:
            written = await self._write_group(data, count)
            if self._size > max(self.segment_bytes, 4 * self._snapshot_size):
                await self._compact()
        except asyncio.CancelledError as exc:
            _settle(waiter, exc)
            raise
        # I/O, or a bug (e.g. in a snapshot): as sticky, as loud; the flusher must not die
        except Exception as exc:  # noqa: BLE001
            failure = (
                exc
                if isinstance(exc, JournalError)
                else _error(self.dir, "journal flush failed", exc)
            )
            await self._lose(b"" if written else data, 0 if written else count, failure)
        finally:
            self._writing = None
        # a group on disk is committed even if the compaction after it failed
        _settle(waiter, None if written or self._failure is None else self._failure.again())

    async def _write_group(self, data: bytes, count: int) -> bool:
        """Run the hooks, write and (per the durability) sync one group: True when done."""
        self._run_hooks()
        if data:
            fsync = self.durability != "off"
            fds = [get() for get in self.sync_fds] if fsync else []
            await self._write(data, fsync, fds)
            self.stats["records"] += count
            self.stats["groups"] += 1
        return True

    def _run_hooks(self) -> None:
        for hook in self.pre_write:
            try:
                hook()
            except Exception as exc:
                name = getattr(hook, "__qualname__", repr(hook))
                raise _error(self.dir, f"journal pre-write hook {name} failed", exc) from exc

    async def _write(
        self, data: bytes, fsync: bool, fds: list[int], what: str = "journal group commit"
    ) -> None:
        """Append ``data`` (after the segment header, if none is written yet)."""
        payload = self._head + data if self._head else data
        try:
            await asyncio.to_thread(_write_group, self._fd, payload, fsync, fds)
        except OSError as exc:
            raise _error(self._path, f"{what} failed", exc) from exc
        self._head = b""
        self._good += len(payload)
        self._size += len(payload)
        self.stats["bytes"] += len(payload)

    async def _compact(self) -> None:
        if self.snapshot is None:
            return
        old = self.segments()
        try:
            self._new_segment()
            records = self.snapshot()  # taken in the loop: consistent with the buffer swap
            snapshot = b"".join(frame(pack(r)) for r in records)
            await self._write(snapshot, True, [], "journal compaction")
            for path in old:
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise _error(self._path, "journal compaction failed", exc) from exc
        self._size = self._snapshot_size = self._good
        self.stats["compactions"] += 1

    async def _lose(self, data: bytes, count: int, failure: JournalError) -> None:
        """A group could not be written (or a compaction failed): keep the group's
        records (in front of what came since), cut the segment back to its last good
        group, fail every waiter from now on."""
        self._buffer[:0] = data
        self._pending += count
        self._fail(failure)
        if self._committed is not None:
            _settle(self._committed, failure.again())
            self._committed = None
        if self._fd >= 0:
            try:
                await asyncio.to_thread(os.ftruncate, self._fd, self._good)
            except OSError as exc:
                log.error(
                    "journal %s: cannot cut the failed group off (%s); replay will cut it "
                    "as a torn tail",
                    self._path,
                    exc,
                )

    def _fail(self, failure: JournalError) -> JournalError:
        self._failure = failure
        self._failed.set()
        self.stats["error"] = str(failure)
        self.stats["unwritten"] = self._pending
        log.error(
            "%s; %d record(s) not written: this journal takes no more records, the worker "
            "must stop and be resumed once the cause is fixed",
            failure,
            self._pending,
        )
        return failure

    async def close(self) -> None:
        """Commit what is buffered, let a group being written finish, stop the flusher,
        close the segment; then raise :class:`JournalError` if any write failed (so a
        caller that forgets to check ``error`` cannot report success).

        The flusher is asked to stop rather than cancelled: cancelling it mid-write
        would close the descriptor under the writing thread and lose the group."""
        self._closing = True
        self._stop.set()
        self._wake.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        if self._failure is None and (self._buffer or self._committed is not None):
            await self._flush_once()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._failure is not None:
            raise self._failure.again()


def _cut_tail(path: Path, end: int, size: int) -> None:
    """Cut a torn tail (a write the process died in) so new groups never follow it."""
    log.warning("journal %s: cut a torn tail of %d bytes at offset %d", path, size - end, end)
    try:
        with path.open("r+b") as fh:
            fh.truncate(end)
    except OSError as exc:
        raise _error(path, "cannot cut a torn journal tail", exc) from exc


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
        future.exception()  # retrieved: a group nobody waits for is not logged again


def _error(default: Path, what: str, exc: BaseException) -> JournalError:
    """A JournalError naming the failing file (the OSError's own, else ``default``)."""
    if isinstance(exc, OSError):
        path = Path(os.fsdecode(exc.filename)) if exc.filename else default
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return JournalError(path, f"{what} ({exc.strerror or exc}, {code})", exc)
    return JournalError(default, f"{what} ({type(exc).__name__}: {exc})", exc)


def _fd_path(fd: int) -> str:
    """The file behind a descriptor (Linux), for an error message."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def _write_group(fd: int, data: bytes, fsync: bool, other_fds: list[int]) -> None:
    for other in other_fds:
        if other >= 0:
            try:
                os.fsync(other)
            except OSError as exc:
                exc.filename = exc.filename or _fd_path(other)
                raise
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if fsync:
        os.fsync(fd)
