"""What one worker is told: its identity in the run, its slice and its limits.

Built from the run's config by :func:`matrixhpc.build.worker_spec`; frozen, so a
running worker's settings cannot drift from what was journaled and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    index: int
    count: int
    group: str
    run_dir: Path
    dataset_path: str
    dataset_limit: int | None = None
    trials: int = 1
    required: tuple[str, ...] = ()
    seed: int = 0
    window: int = 256
    max_active: int = 4096
    host: str = "127.0.0.1"
    shard_records: int = 100_000
    flush_interval: float = 1.0
    load_interval: float = 1.0  # the load in the registry entry is updated at most this often
    durability: str = "batch"
    commit_interval: float = 0.005
    segment_bytes: int = 64 * 2**20
    lease: float = 300.0
    max_attempts: int = 3
    ack_timeout: float = 10.0
    encrypt: bool = True
    initial_state: dict[str, Any] = field(default_factory=dict)  # every task starts with it
    sandboxed: bool = False  # the run configures sandboxes: route a task to its holder
