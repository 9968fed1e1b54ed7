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


class JsonDir:
    """The ``*.json`` files of one directory, read again only where something changed.

    A look costs one ``stat`` of the directory when nothing was added, removed or
    replaced since the last one (an atomic write is a rename, which changes the
    directory's mtime); otherwise one listing, whose entries carry their inode numbers
    at no extra cost, and one read per file whose inode is new (every atomic write makes
    a new inode). An unchanged file is never opened twice.

    A listing is trusted to be complete only once the directory's mtime is older than
    ``racy`` seconds at the time of the listing (a change in the same timestamp tick,
    1 s on some NFS servers, would otherwise go unseen): until then the next look lists
    again.

    An inode number can be reused once its file is gone (ext4 and GPFS do, Lustre does
    not), so a file replaced twice between two looks may come back with the inode the
    reader knows: every ``full_every`` seconds (of ``clock``) a look re-reads every
    file, which bounds how long such a change goes unseen."""

    def __init__(
        self,
        directory: Path,
        *,
        racy: float = 2.0,
        full_every: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.racy = racy
        self.full_every = full_every
        self.clock = clock
        self._full = clock()  # when every file was last read
        self._mtime: int | None = None
        self._listed = float("-inf")  # wall time of the last listing
        self._files: dict[str, tuple[int, Any]] = {}  # file name -> (inode, parsed)

    def read(self) -> dict[str, Any]:
        """``{stem: parsed JSON}`` of the directory's ``*.json`` files (unreadable or
        damaged ones left out); empty if the directory does not exist."""
        try:
            st = os.stat(self.directory)
        except FileNotFoundError:
            self._files, self._mtime = {}, None
            return {}
        full = self.clock() - self._full >= self.full_every
        if full or st.st_mtime_ns != self._mtime or self._listed - st.st_mtime <= self.racy:
            self._relist(st.st_mtime_ns, full=full)
        return {name[:-5]: data for name, (_, data) in self._files.items() if data is not None}

    def _relist(self, mtime: int, *, full: bool) -> None:
        listed = time.time()
        if full:
            self._files, self._full = {}, self.clock()
        try:
            with os.scandir(self.directory) as it:
                names = {
                    d.name: d.inode()
                    for d in it
                    if d.name.endswith(".json") and not d.name.startswith(".")
                }
        except FileNotFoundError:
            names = {}
        files: dict[str, tuple[int, Any]] = {}
        for name, inode in names.items():
            known = self._files.get(name)
            if known is not None and known[0] == inode:
                files[name] = known
            else:
                files[name] = (inode, read_json(self.directory / name))
        self._files, self._mtime, self._listed = files, mtime, listed

    def inode(self, stem: str) -> int | None:
        known = self._files.get(f"{stem}.json")
        return None if known is None else known[0]

    def remember(self, stem: str, inode: int, data: Any) -> None:
        """Record what a caller read (or wrote) itself, so it is not read again."""
        self._files[f"{stem}.json"] = (inode, data)
