"""Which tasks a worker owns: its slice of the dataset, times the trials, with stable ids.

Ids (``r<row>-t<trial>``) and seeds depend only on the row, the trial and the run's
seed, so a restarted worker, a resumed run and the benchmarks' baselines all make
the very same tasks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from matrixhpc.data.readers import RowError, iter_rows
from matrixhpc.runtime.origin import task_id
from matrixhpc.task import Task


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.blake2b(f"{run_seed}:{task_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


def new_task(row: int, trial: int, data: dict[str, Any], origin: str, run_seed: int) -> Task:
    tid = task_id(row, trial)
    task = Task(id=tid, seed=task_seed(run_seed, tid), row=data, origin=origin)
    task.state["trial"] = trial
    return task


def slice_items(
    path: str,
    *,
    limit: int | None,
    shard: tuple[int, int],
    required: list[str],
    trials: int,
    origin: str,
    run_seed: int,
) -> Iterator[Task | RowError]:
    """Every task of the slice in order, and every bad row of it (to be recorded)."""
    for item in iter_rows(path, limit=limit, shard=shard, required=required):
        if isinstance(item, RowError):
            yield item
            continue
        for trial in range(trials):
            yield new_task(item.index, trial, item.data, origin, run_seed)
