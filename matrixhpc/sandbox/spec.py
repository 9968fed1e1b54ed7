"""What one configured sandbox is: its backend, image, pool size, network and limits.

Built from the run's config (``sandboxes.<name>``) by :mod:`matrixhpc.build`; this package
does not read the config itself, so a test or a benchmark makes a spec by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matrixhpc.sandbox.types import Limits

WORKDIR = "/work"  # the commands' cwd inside every sandbox, private to the task


@dataclass(frozen=True)
class SandboxSpec:
    name: str
    backend: str  # "bubblewrap" | "apptainer"
    image: str | None = None  # apptainer: a SIF file; bubblewrap: a root directory (optional)
    pool: int = 4  # live sandboxes at most, on this worker
    network: str = "none"  # "none" | "host"
    limits: Limits = field(default_factory=Limits)
    start_timeout: float = 60.0  # apptainer: instance start plus the readiness probe
    idle_s: float = 300.0  # an idle live instance is stopped after this (the reaper)
    keep_s: float = 600.0  # a task that left keeps its sandbox here this long
    acquire_timeout: float = 600.0  # a task waits this long for a free slot
    scratch: Path = Path("/tmp")  # node-local directory for the slots' files
    env: dict[str, str] = field(default_factory=dict)  # environment inside
    uid_base: int | None = None  # root: slot i runs as uid_base + i (see limits)
    run_id: str = "run"  # names this run's instances and directories on the node
    owner: str = "w000"  # the worker that owns the pool
