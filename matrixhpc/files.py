"""Files that readers see whole or not at all: the one implementation of atomic writes.

Every small file the processes of a run share (registry entries, status files, run.json,
pids.json, the manifest, shard indexes, keys) and every rewrite of an output shard goes
through here, so they all make the same promises on Lustre, NFS and local disks:

- a write goes to a temp file in the same directory, is fsynced, then renamed over the
  target: readers, and a crash, see the old file or the new one, never half of one
  (``fsync=False`` keeps the first promise only, for ``durability: off``);
- a temp file is removed if the write fails (a full disk leaves no debris behind);
- ``sync_dir`` also fsyncs the directory, for files whose rename must survive a node
  crash (a rename is durable only once its directory is);
- :func:`create_once` makes a file exactly once even when two processes race for it.

Below every package that writes files (it imports nothing of ours), so the registry,
``data/``, ``llm/``, ``launch/`` and the runtime share it without importing each other.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any


def fsync_file(fh: IO[Any]) -> None:
    """Flush Python's buffer, then the OS's: the data is on disk when this returns."""
    fh.flush()
    os.fsync(fh.fileno())


def fsync_dir(directory: Path) -> None:
    """Make the renames and new names in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(
    path: Path,
    chunks: Iterable[bytes],
    *,
    fsync: bool = True,
    sync_dir: bool = False,
    one_writer: bool = False,
    mtime: float | None = None,
) -> None:
    """Replace ``path`` with ``chunks``: temp file, fsync (unless ``fsync`` is false),
    rename, and an fsync of the directory with ``sync_dir``. The parent directory is
    created if it is missing. ``mtime`` sets the file's modification time (the registry
    keeps heartbeats there, in the writer's clock).

    The temp name is unique per call, so two processes writing the same file (a stale
    one that has not noticed it was replaced) cannot break each other's write. With
    ``one_writer`` the caller promises it is the file's only writer and the temp name is
    fixed: the leftover of a writer killed mid-write (which no ``except`` can remove) is
    then overwritten by the next write instead of piling up beside large files."""
    tmp = _temp_path(path, unique=not one_writer)
    try:
        with _create(tmp) as fh:
            for chunk in chunks:
                fh.write(chunk)
            if fsync:
                fsync_file(fh)
            if mtime is not None:
                fh.flush()
                os.utime(fh.fileno(), (mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_json(
    path: Path,
    data: Any,
    *,
    fsync: bool = True,
    sync_dir: bool = False,
    mtime: float | None = None,
) -> None:
    """Write ``data`` as compact JSON with :func:`write_atomically`; values JSON does not
    know (paths, ...) are written as their ``str``."""
    body = json.dumps(data, separators=(",", ":"), default=str).encode()
    write_atomically(path, [body], fsync=fsync, sync_dir=sync_dir, mtime=mtime)


def read_json(path: Path) -> Any | None:
    """Read a JSON file, or None if it is missing or not JSON (a file someone damaged or
    edited by hand: callers treat it as absent and say so where it matters)."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def create_once(path: Path, make: Callable[[], bytes], mode: int = 0o600) -> bytes:
    """The content of ``path``, which is created with ``make()`` (permissions ``mode``)
    if it does not exist yet.

    Safe when processes race: each writes its candidate in full to a private temp file
    (``O_CREAT | O_EXCL``, ``mode`` from the start, fsynced) and hard-links it to
    ``path``. A link never replaces an existing name, so the first one wins and every
    loser reads the winner's file; and the name appears only once its content is
    complete, so no reader ever sees half a file."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_bytes()
    tmp = _temp_path(path, unique=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(make())
            fsync_file(fh)
        with contextlib.suppress(FileExistsError):  # another process won: use its file
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path.read_bytes()


def _temp_path(path: Path, *, unique: bool) -> Path:
    """A hidden name beside ``path`` (same filesystem, so the rename is atomic) that no
    reader looking for ``*.json`` or ``part-*`` picks up."""
    tag = f".{os.getpid()}.{random.getrandbits(32):08x}" if unique else ""
    return path.with_name(f".{path.name}{tag}.tmp")


def _create(tmp: Path) -> IO[bytes]:
    """Open ``tmp`` for writing, creating its directory on first use: one metadata
    operation per write in the common case, not a ``mkdir`` every time."""
    try:
        return tmp.open("wb")
    except FileNotFoundError:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        return tmp.open("wb")


class DirWatch:
    """Whether a directory may have changed since it was last listed: one ``stat``.

    An atomic write (a rename), a new name and a removal all change the directory's
    mtime. A listing is trusted to be complete only once that mtime is older than
    ``racy`` seconds at the time of the listing (a change in the same timestamp tick,
    1 s on some NFS servers, would otherwise go unseen): until then the next look lists
    again."""

    def __init__(self, directory: Path, racy: float = 2.0) -> None:
        self.directory = directory
        self.racy = racy
        self._mtime: int | None = None
        self._listed = float("-inf")  # wall time of the last listing

    def look(self) -> tuple[bool, int] | None:
        """``(stale, mtime_ns)``, or None if the directory does not exist."""
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            self._mtime = None
            return None
        stale = st.st_mtime_ns != self._mtime or self._listed - st.st_mtime <= self.racy
        return stale, st.st_mtime_ns

    def listing(self) -> dict[str, int]:
        """``{name: inode}`` of the directory's visible entries (the inode numbers come
        with the listing at no extra cost); empty if it is gone."""
        try:
            with os.scandir(self.directory) as it:
                return {d.name: d.inode() for d in it if not d.name.startswith(".")}
        except FileNotFoundError:
            return {}

    def listed(self, mtime_ns: int, at: float) -> None:
        """Record a listing started at wall time ``at`` of the directory at ``mtime_ns``."""
        self._mtime, self._listed = mtime_ns, at


class NameDir:
    """The names in one directory, for markers whose name is all they say ("worker
    w042 finished"): a look is one ``stat`` while nothing changed, else one listing.
    No file is ever opened, so N readers of N markers cost N listings, not N**2 reads."""

    def __init__(self, directory: Path, *, racy: float = 2.0) -> None:
        self.watch = DirWatch(directory, racy)
        self._names: frozenset[str] = frozenset()

    def names(self) -> frozenset[str]:
        look = self.watch.look()
        if look is None:
            self._names = frozenset()
        elif look[0]:
            at = time.time()
            self._names = frozenset(self.watch.listing())
            self.watch.listed(look[1], at)
        return self._names

    def add(self, name: str) -> None:
        """Create the marker ``name`` (idempotent; an empty file, never rewritten)."""
        path = self.watch.directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        except FileNotFoundError:
            self.watch.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        os.close(fd)
        self._names = self._names | {name}

    def remove(self, names: Iterable[str] | None = None) -> int:
        """Remove the given markers (all with None); returns how many were there."""
        targets = list(self.watch.listing()) if names is None else list(names)
        removed = 0
        for name in targets:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.watch.directory / name)
                removed += 1
        self._names = self._names - set(targets)
        self.watch.listed(0, float("-inf"))  # list again at the next look
        return removed


class JsonDir:
    """The ``*.json`` files of one directory, read again only where something changed.

    A look costs one ``stat`` of the directory when nothing was added, removed or
    replaced since the last one (:class:`DirWatch`); otherwise one listing and one read
    per file whose inode is new (every atomic write makes a new inode). An unchanged
    file is not opened again until its re-read is due (below).

    An inode number can be reused once its file is gone (ext4 and GPFS do, Lustre does
    not), so a file replaced twice between two looks may come back with the inode the
    reader knows: each file is therefore re-read ``full_every`` seconds (of ``clock``)
    after it was last read, which bounds how long such a change goes unseen. The first
    re-reads are spread at random over that period, and each look re-reads only the
    files that are due: N readers of N files cost N**2 / full_every reads per second,
    evenly, never N**2 at once (all workers of a Slurm array start together)."""

    def __init__(
        self,
        directory: Path,
        *,
        racy: float = 2.0,
        full_every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.watch = DirWatch(directory, racy)
        self.full_every = full_every
        self.clock = clock
        self._files: dict[str, tuple[int, Any]] = {}  # file name -> (inode, parsed)
        self._due: dict[str, float] = {}  # file name -> when it is read again anyway
        self._next_due = float("inf")

    def read(self) -> dict[str, Any]:
        """``{stem: parsed JSON}`` of the directory's ``*.json`` files (unreadable or
        damaged ones left out); empty if the directory does not exist."""
        look = self.watch.look()
        if look is None:
            self._files, self._due = {}, {}
            return {}
        if look[0]:
            self._relist(look[1])
        if self.clock() >= self._next_due:
            self._reread_due()
        return {name[:-5]: data for name, (_, data) in self._files.items() if data is not None}

    def _relist(self, mtime: int) -> None:
        listed = time.time()
        now = self.clock()
        first = not self._files
        names = {n: ino for n, ino in self.watch.listing().items() if n.endswith(".json")}
        files: dict[str, tuple[int, Any]] = {}
        for name, inode in names.items():
            known = self._files.get(name)
            if known is not None and known[0] == inode:
                files[name] = known
                continue
            files[name] = (inode, read_json(self.directory / name))
            spread = random.uniform(0.0, 1.0) if first else 1.0
            self._due[name] = now + self.full_every * spread
        self._files = files
        self._due = {name: self._due.get(name, now) for name in files}
        self._next_due = min(self._due.values(), default=float("inf"))
        self.watch.listed(mtime, listed)

    def _reread_due(self) -> None:
        now = self.clock()
        for name, due in list(self._due.items()):
            if due <= now:
                inode = self._files[name][0]
                self._files[name] = (inode, read_json(self.directory / name))
                self._due[name] = now + self.full_every
        self._next_due = min(self._due.values(), default=float("inf"))

    def inode(self, stem: str) -> int | None:
        known = self._files.get(f"{stem}.json")
        return None if known is None else known[0]

    def remember(self, stem: str, inode: int, data: Any) -> None:
        """Record what a caller read (or wrote) itself, so it is not read again before
        its re-read is due (spread at random, like a first listing's)."""
        name = f"{stem}.json"
        self._files[name] = (inode, data)
        self._due[name] = self.clock() + self.full_every * random.uniform(0.0, 1.0)
        self._next_due = min(self._next_due, self._due[name])
