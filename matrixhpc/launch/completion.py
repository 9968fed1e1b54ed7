"""When is a run finished? When every worker has declared its own tasks written.

Read from the registry by anyone who needs it, without asking a launcher: LLM
servers (so that a Slurm server job ends COMPLETED with its run), the Slurm
launcher's watcher, and ``status``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from matrixhpc.runtime.registry import Registry

WORKERS = "workers"


def run_finished(registry: Registry, workers: int) -> bool:
    entries = registry.entries(WORKERS, fresh=True)
    done = [e for e in entries.values() if e.get("origin_done") and e.get("state") == "exited"]
    return len(done) >= workers


async def wait_run_finished(run_dir: Path, workers: int, interval: float = 5.0) -> None:
    registry = Registry(run_dir / "registry")
    while not run_finished(registry, workers):
        await asyncio.sleep(interval)
