"""A registry of small JSON files on the shared filesystem.

Why files: every cluster has a shared filesystem and nothing else in common; no
server to start, no locks (Lustre/NFS locking is slow or broken), one writer per
file. Liveness is a heartbeat plus a TTL; readers cache directory scans and refresh
with jitter so that thousands of clients do not storm the metadata server in lockstep.

The metadata budget (DESIGN.md, "Invariants and budgets") shapes every operation:

- an entry's content is written (:func:`matrixhpc.files.atomic_write_json`: temp file,
  rename, a new inode) only when it changes; a heartbeat whose content did not change is
  one ``utime`` of the file, setting its mtime to the writer's clock, and only once a
  fifth of the TTL has passed since the last one: no new inode, no change to the
  directory every reader lists;
- a scan is one ``stat`` of the directory when nothing in it was replaced, else one
  listing plus one read per replaced entry (:class:`matrixhpc.files.JsonDir`), and
  every entry is re-read every ``full_every`` seconds (inode numbers can be reused);
- a reader that finds an entry's heartbeat older than its TTL ``stat``s that one file
  before declaring it dead (its mtime is the latest heartbeat), at most every quarter
  TTL per entry. Liveness costs readers one ``stat`` per entry per TTL, so a run of N
  workers sizes the TTL with N (``matrixhpc.build``);
- facts that every process waits for and that never change once true ("worker w042 has
  written its tasks") are **markers**: empty files whose name is the fact
  (:meth:`mark`, :meth:`marked`). Readers list, never open them, so N workers waiting
  for N markers cost N listings, not the N**2 reads that N changed entries would;
- a process that starts late (a requeued worker) would read every entry once, N reads
  each: one process per run (worker 0) saves a **snapshot** of what it knows
  (:meth:`save_snapshot`, entries with their inode numbers), and a new reader starts
  from it, reading only the entries replaced since (one open instead of N).

Below everything that uses it (the runtime, LLM services, launchers, ``status``): it
knows files and clocks, nothing of tasks, sockets or engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrixhpc.files import JsonDir, NameDir, atomic_write_json, read_json

DEFAULT_TTL = 30.0

# The run's well-known kinds, in one place: workers, launchers and servers all read them.
WORKERS = "workers"  # entries: a worker's address, roles and load
FINISHED = "finished"  # markers: a worker whose own tasks are all written
EXITED = "exited"  # markers: a worker that left once every worker had finished


BEAT_FRACTION = 5  # a heartbeat is due once ttl / BEAT_FRACTION has passed
SNAPSHOTS = "_snapshots"  # beside the kinds; never inside a directory readers list
SNAPSHOT_TRUST = 60.0  # a snapshot older than this (or full_every) is not used


@dataclass
class _Scan:
    files: JsonDir
    at: float = 0.0  # when the next scan is due
    done: float = float("-inf")  # when the last scan ran
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    checked: dict[str, float] = field(default_factory=dict)  # name -> when last stat'ed


@dataclass
class _Mine:
    """An entry this process wrote: what, and when its last heartbeat reached the disk."""

    content: dict[str, Any]
    beat: float


class Registry:
    """``root/<kind>/<name>.json``; ``kind`` may be nested, e.g. ``llm/<service>``."""

    def __init__(
        self,
        root: Path | str,
        *,
        ttl: float = DEFAULT_TTL,
        scan_interval: float = 2.0,
        fresh_floor: float | None = None,
        clock: Callable[[], float] = time.time,
        full_every: float = 5.0,
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self.ttl = ttl
        self.scan_interval = scan_interval
        # a "fresh" scan is still at most this often: many tasks waiting on one change
        # share one directory listing instead of each forcing its own (a Lustre storm)
        self.fresh_floor = min(1.0, scan_interval / 2) if fresh_floor is None else fresh_floor
        self.full_every = full_every  # every entry re-read at least this often (JsonDir)
        self._scans: dict[str, _Scan] = {}
        self._mine: dict[tuple[str, str], _Mine] = {}
        self._marks: dict[str, tuple[NameDir, float, frozenset[str]]] = {}
        self._snapshotted: dict[str, dict[str, Any]] = {}

    def path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def register(
        self, kind: str, name: str, data: dict[str, Any], *, ttl: float | None = -1.0
    ) -> None:
        """Write an entry now. ``ttl=None`` makes it permanent (a tombstone such as
        "this worker finished" that must outlive its writer)."""
        content = self._content(name, data, ttl)
        now = self.clock()
        entry = {**content, "heartbeat": now}
        # no fsync: an entry is soft state, and a node that crashes takes its heartbeats
        # with it (readers see the old file or the new one)
        atomic_write_json(self.path(kind, name), entry, fsync=False, mtime=now)
        self._mine[(kind, name)] = _Mine(content, now)
        self._seen_own(kind, name, entry)

    def publish(
        self, kind: str, name: str, data: dict[str, Any], *, ttl: float | None = -1.0
    ) -> str:
        """Keep an entry current at the least cost: written only if its content changed,
        else its heartbeat (the file's mtime) refreshed only if due, else nothing.
        Returns what it did: ``"write"``, ``"beat"`` or ``""``."""
        content = self._content(name, data, ttl)
        mine = self._mine.get((kind, name))
        if mine is None or mine.content != content:
            self.register(kind, name, data, ttl=ttl)
            return "write"
        now = self.clock()
        if not self._beat_due(mine, now):
            return ""
        try:
            os.utime(self.path(kind, name), (now, now))
        except FileNotFoundError:  # removed by someone (a resume): write it again
            self.register(kind, name, data, ttl=ttl)
            return "write"
        mine.beat = now
        self._seen_own(kind, name, {**content, "heartbeat": now})
        return "beat"

    def _content(self, name: str, data: dict[str, Any], ttl: float | None) -> dict[str, Any]:
        content = dict(data)
        content.update(
            name=name,
            ttl=self.ttl if ttl is not None and ttl < 0 else ttl,
            host=content.get("host", socket.gethostname()),
            pid=content.get("pid", os.getpid()),
            touch=True,  # readers may take the heartbeat from the file's mtime
        )
        return content

    def _beat_due(self, mine: _Mine, now: float) -> bool:
        ttl = mine.content.get("ttl")
        return ttl is not None and now - mine.beat >= float(ttl) / BEAT_FRACTION

    def _seen_own(self, kind: str, name: str, entry: dict[str, Any]) -> None:
        """This process sees its own write at once, scan or not."""
        if kind in self._scans:
            self._scans[kind].entries[name] = entry

    def deregister(self, kind: str, name: str) -> None:
        self.path(kind, name).unlink(missing_ok=True)
        self._mine.pop((kind, name), None)
        if kind in self._scans:
            self._scans[kind].entries.pop(name, None)

    def entries(self, kind: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Live entries of a kind, from a cached scan no older than ~scan_interval
        (``fresh``: no older than ``fresh_floor``)."""
        scan = self._scans.get(kind)
        if scan is None:
            files = JsonDir(self.root / kind, full_every=self.full_every, clock=self.clock)
            scan = self._scans[kind] = _Scan(files)
            self._seed(kind, scan)
        now = self.clock()
        if now >= scan.at or (fresh and now - scan.done >= self.fresh_floor):
            scan.entries = self._scan(kind)
            scan.done = now
            scan.at = now + self.scan_interval * random.uniform(0.75, 1.25)
        live = {}
        for name, entry in list(scan.entries.items()):
            if not _alive(entry, now):
                entry = self._recheck(kind, scan, name, entry, now)
            if _alive(entry, now):
                live[name] = entry
        return live

    def _scan(self, kind: str) -> dict[str, dict[str, Any]]:
        scan = self._scans[kind]
        found = {n: e for n, e in scan.files.read().items() if isinstance(e, dict)}
        for name, entry in found.items():
            known = scan.entries.get(name)
            if known is not None and known.get("name") == entry.get("name"):
                # a heartbeat learned from the file's mtime outlives the listing
                beat = max(float(entry.get("heartbeat", 0)), float(known.get("heartbeat", 0)))
                if beat != entry.get("heartbeat") and entry.get("touch"):
                    found[name] = {**entry, "heartbeat": beat}
        for (k, name), mine in self._mine.items():
            if k == kind and name in found:
                found[name] = {**mine.content, "heartbeat": mine.beat}
        return found

    def _recheck(
        self, kind: str, scan: _Scan, name: str, entry: dict[str, Any], now: float
    ) -> dict[str, Any]:
        """An entry whose known heartbeat is older than its TTL: its file's mtime may
        hold a newer one (one ``stat``, at most every quarter TTL per entry)."""
        ttl = float(entry.get("ttl") or 0)
        if not entry.get("touch") or now - scan.checked.get(name, float("-inf")) < ttl / 4:
            return entry
        scan.checked[name] = now
        path = self.path(kind, name)
        try:
            st = os.stat(path)
        except OSError:
            return entry
        if st.st_ino != scan.files.inode(name):  # replaced since the listing: read it
            data = read_json(path)
            if not isinstance(data, dict):
                return entry
            scan.files.remember(name, st.st_ino, data)
            entry = data
        beat = max(float(entry.get("heartbeat", 0)), st.st_mtime)
        entry = {**entry, "heartbeat": beat}
        scan.entries[name] = entry
        return entry

    # ------------------------------------------------------------------ markers

    def mark(self, kind: str, name: str) -> None:
        """Create the marker ``root/<kind>/<name>`` (idempotent, permanent until
        :meth:`unmark`): a fact others wait for that never changes once true."""
        names, at, known = self._markers(kind)
        names.add(name)
        self._marks[kind] = (names, at, known | {name})

    def marked(self, kind: str) -> frozenset[str]:
        """The markers of ``kind``: one ``stat`` while nothing changed, else a listing;
        at most one look per ``fresh_floor`` (many waiters share it)."""
        names, at, known = self._markers(kind)
        now = self.clock()
        if now - at >= self.fresh_floor:
            known = names.names()
            self._marks[kind] = (names, now, known)
        return known

    def unmark(self, kind: str, names: list[str] | None = None) -> int:
        """Remove markers of ``kind`` (all with None); returns how many were there."""
        removed = self._markers(kind)[0].remove(names)
        self._marks.pop(kind, None)
        return removed

    def _markers(self, kind: str) -> tuple[NameDir, float, frozenset[str]]:
        if kind not in self._marks:
            self._marks[kind] = (NameDir(self.root / kind), float("-inf"), frozenset())
        return self._marks[kind]

    # ---------------------------------------------------------------- snapshots

    def _snapshot_path(self, kind: str) -> Path:
        return self.root / SNAPSHOTS / f"{kind.replace('/', '__')}.json"

    def save_snapshot(self, kind: str) -> bool:
        """Save what this process knows of ``kind`` (each entry with the inode it was
        read from) for processes that start later; returns whether it wrote. Meant for
        one process per run: the snapshot is a cache, readers verify every inode."""
        scan = self._scans.get(kind)
        if scan is None:
            return False
        entries = {}
        for name, entry in scan.entries.items():
            inode = scan.files.inode(name)
            if inode is not None:
                entries[name] = {"inode": inode, "entry": entry}
        if not entries or entries == self._snapshotted.get(kind):
            return False
        body = {"kind": kind, "written": self.clock(), "entries": entries}
        atomic_write_json(self._snapshot_path(kind), body, fsync=False)
        self._snapshotted[kind] = entries
        return True

    def _seed(self, kind: str, scan: _Scan) -> None:
        """Start a first scan from the run's snapshot, if one is recent: the listing
        that follows reads only the entries whose inode is not the snapshot's."""
        snap = read_json(self._snapshot_path(kind))
        if not isinstance(snap, dict) or snap.get("kind") != kind:
            return
        written = snap.get("written")
        trust = max(self.full_every, SNAPSHOT_TRUST)
        if not isinstance(written, (int, float)) or not 0 <= self.clock() - written <= trust:
            return
        entries = snap.get("entries")
        for name, item in (entries if isinstance(entries, dict) else {}).items():
            if not isinstance(item, dict):
                continue
            inode, entry = item.get("inode"), item.get("entry")
            if isinstance(inode, int) and isinstance(entry, dict) and isinstance(name, str):
                scan.files.remember(name, inode, entry)
                scan.entries[name] = entry

    async def heartbeat(
        self,
        kind: str,
        name: str,
        data: Callable[[], dict[str, Any]],
        interval: float | None = None,
    ) -> None:
        """Refresh an entry forever (cancel to stop); a failed write is retried next beat.
        (:meth:`register` writes only what changed, and the heartbeat only when due.)"""
        period = interval if interval is not None else max(self.ttl / BEAT_FRACTION, 0.2)
        while True:
            with contextlib.suppress(OSError):  # a failed write is retried next beat
                self.publish(kind, name, data())
            await asyncio.sleep(period * random.uniform(0.9, 1.1))


def _alive(entry: dict[str, Any], now: float) -> bool:
    ttl = entry.get("ttl")
    if ttl is None:
        return True
    return bool(now - float(entry.get("heartbeat", 0)) <= float(ttl))
