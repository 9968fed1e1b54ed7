"""When is a run finished? When every worker has written its own tasks and exited.

Read from the registry's markers (``registry/finished/<worker>``: its own tasks are
written; ``registry/exited/<worker>``: it left after the whole run finished) by anyone
who needs it, without asking a launcher: LLM servers (so that a Slurm server job ends
COMPLETED with its run), the launchers, and ``status``. A look is one ``stat`` while
nothing changes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from matrixhpc.registry import EXITED, FINISHED, WORKERS, Registry


def worker_name(index: int) -> str:
    """Worker ``index``'s name in the registry, status files and logs (as build.py names it)."""
    return f"w{index:03d}"


def run_finished(registry: Registry, workers: int) -> bool:
    return len(registry.marked(EXITED)) >= workers


async def wait_run_finished(run_dir: Path, workers: int, interval: float = 5.0) -> None:
    registry = Registry(run_dir / "registry")
    # the registry is files on a shared filesystem, written by other hosts: no event to await
    while not run_finished(registry, workers):  # noqa: ASYNC110
        await asyncio.sleep(interval)


def forget_workers(registry: Registry, names: list[str] | None = None) -> int:
    """Remove the registry entries of workers about to be started again (all, or ``names``).

    A worker that finished leaves permanent markers, and those tell the LLM servers
    (and the launchers) the run is over. Left in place across a resume, the markers of
    the previous incarnation would end the new replicas the moment they start; the new
    workers mark again what is still true as they come up. Returns how many entries
    were removed.
    """
    root = registry.root / WORKERS
    paths = (
        list(root.glob("*.json")) if names is None else [root / f"{name}.json" for name in names]
    )
    removed = 0
    for path in paths:
        if path.exists():
            path.unlink(missing_ok=True)
            removed += 1
    for kind in (FINISHED, EXITED):
        registry.unmark(kind, names)
    return removed
