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
) -> None:
    """Replace ``path`` with ``chunks``: temp file, fsync (unless ``fsync`` is false),
    rename, and an fsync of the directory with ``sync_dir``. The parent directory is
    created if it is missing.

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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any, *, fsync: bool = True, sync_dir: bool = False) -> None:
    """Write ``data`` as compact JSON with :func:`write_atomically`; values JSON does not
    know (paths, ...) are written as their ``str``."""
    body = json.dumps(data, separators=(",", ":"), default=str).encode()
    write_atomically(path, [body], fsync=fsync, sync_dir=sync_dir)


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
