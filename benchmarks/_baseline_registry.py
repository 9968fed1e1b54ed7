"""A registry of small JSON files on the shared filesystem.

Why files: every cluster has a shared filesystem and nothing else in common; no
server to start, no locks (Lustre/NFS locking is slow or broken), one writer per
file. Writes are :func:`matrixhpc.files.atomic_write_json` (temp file, fsync,
rename: atomic on POSIX filesystems, Lustre and NFS included). Liveness is a
heartbeat timestamp inside the file plus a TTL; readers cache directory scans
and refresh with jitter so that thousands of clients do not storm the metadata
server in lockstep.

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

from matrixhpc.files import atomic_write_json, read_json

DEFAULT_TTL = 30.0


@dataclass
class _Scan:
    at: float = 0.0  # when the next scan is due
    done: float = float("-inf")  # when the last scan ran
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    ) -> None:
        self.root = Path(root)
        self.clock = clock
        self.ttl = ttl
        self.scan_interval = scan_interval
        # a "fresh" scan is still at most this often: many tasks waiting on one change
        # share one directory listing instead of each forcing its own (a Lustre storm)
        self.fresh_floor = min(1.0, scan_interval / 2) if fresh_floor is None else fresh_floor
        self._scans: dict[str, _Scan] = {}

    def path(self, kind: str, name: str) -> Path:
        return self.root / kind / f"{name}.json"

    def register(
        self, kind: str, name: str, data: dict[str, Any], *, ttl: float | None = -1.0
    ) -> None:
        """Write (or refresh) an entry. ``ttl=None`` makes it permanent (a tombstone
        such as "this worker finished" that must outlive its writer)."""
        entry = dict(data)
        entry.update(
            name=name,
            heartbeat=self.clock(),
            ttl=self.ttl if ttl is not None and ttl < 0 else ttl,
            host=entry.get("host", socket.gethostname()),
            pid=entry.get("pid", os.getpid()),
        )
        # no fsync: an entry is soft state rewritten every heartbeat, and a node that
        # crashes takes its heartbeats with it (readers see the old file or the new one)
        atomic_write_json(self.path(kind, name), entry, fsync=False)
        if kind in self._scans:  # this process sees its own write at once, scan or not
            self._scans[kind].entries[name] = entry

    def deregister(self, kind: str, name: str) -> None:
        self.path(kind, name).unlink(missing_ok=True)
        if kind in self._scans:
            self._scans[kind].entries.pop(name, None)

    def entries(self, kind: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """Live entries of a kind, from a cached scan no older than ~scan_interval
        (``fresh``: no older than ``fresh_floor``)."""
        scan = self._scans.setdefault(kind, _Scan())
        now = self.clock()
        if now >= scan.at or (fresh and now - scan.done >= self.fresh_floor):
            scan.entries = self._scan(kind)
            scan.done = now
            scan.at = now + self.scan_interval * random.uniform(0.75, 1.25)
        return {n: e for n, e in scan.entries.items() if _alive(e, now)}

    def _scan(self, kind: str) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        try:
            names = [d.name for d in os.scandir(self.root / kind) if d.name.endswith(".json")]
        except FileNotFoundError:
            return found
        for name in names:
            entry = read_json(self.root / kind / name)
            if isinstance(entry, dict):
                found[name[:-5]] = entry
        return found

    async def heartbeat(
        self,
        kind: str,
        name: str,
        data: Callable[[], dict[str, Any]],
        interval: float | None = None,
    ) -> None:
        """Refresh an entry forever (cancel to stop); a failed write is retried next beat."""
        period = interval if interval is not None else max(self.ttl / 4, 0.2)
        while True:
            with contextlib.suppress(OSError):  # a failed write is retried next beat
                self.register(kind, name, data())
            await asyncio.sleep(period * random.uniform(0.9, 1.1))


def _alive(entry: dict[str, Any], now: float) -> bool:
    ttl = entry.get("ttl")
    if ttl is None:
        return True
    return bool(now - float(entry.get("heartbeat", 0)) <= float(ttl))
