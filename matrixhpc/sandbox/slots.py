"""A pool's slots and their node-local directories.

A slot is one sandbox the pool can give to a task: on the host it is a directory
``<scratch>/matrixhpc-sandbox-<uid>/<run>/<worker>/<sandbox>/<n>/`` holding the task's working
directory (``work``, mounted at the sandbox's cwd) and its ``tmp``; an Apptainer slot
is also a long-lived instance. The directories are node-local on purpose: per-task
scratch on a shared filesystem would cost its metadata server an operation per file.
When the worker is root each slot has its own uid (``uid_base + n``) that owns its
directories (mode 0700): the kernel then counts its processes apart (RLIMIT_NPROC) and
no slot can read another's files even by path.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matrixhpc.sandbox.spec import SandboxSpec

STARTING, IDLE, BUSY, BROKEN = "starting", "idle", "busy", "broken"


def run_root(spec: SandboxSpec) -> Path:
    """Everything of this run on this node (every worker's pools), per user."""
    return spec.scratch / f"matrixhpc-sandbox-{os.getuid()}" / spec.run_id


def pool_root(spec: SandboxSpec) -> Path:
    return run_root(spec) / spec.owner / spec.name


@dataclass(eq=False)
class Slot:
    index: int
    dir: Path
    uid: int | None = None
    state: str = STARTING
    key: str | None = None  # the task holding it
    parked_at: float | None = None  # when its task left (None: the task is here)
    last_used: float = field(default_factory=time.monotonic)
    generation: int = 0  # bumped by every (re)start: a lease of an older one is stale
    execs: int = 0

    @property
    def work(self) -> Path:
        return self.dir / "work"

    @property
    def tmp(self) -> Path:
        return self.dir / "tmp"

    @property
    def gid(self) -> int | None:
        return self.uid

    def make_dirs(self) -> None:
        """Empty ``work`` and ``tmp`` owned by the slot's uid (mode 0700). Emptied in
        place, not replaced: a live instance has them bind-mounted."""
        for path in (self.work, self.tmp):
            path.mkdir(parents=True, mode=0o700, exist_ok=True)
            for entry in list(path.iterdir()):
                wipe(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            os.chmod(path, 0o700)
            if self.uid is not None:
                os.chown(path, self.uid, self.uid)
        os.chmod(self.dir, 0o711 if self.uid is not None else 0o700)


def wipe(path: Path) -> None:
    """Remove ``path`` whatever the sandbox left in it (directories it made read-only too)."""
    if not path.exists() and not path.is_symlink():
        return

    def retry_writable(func: Callable[[str], object], name: str, _exc: object) -> None:
        os.chmod(os.path.dirname(name), 0o700)
        func(name)

    shutil.rmtree(path, onerror=retry_writable)
