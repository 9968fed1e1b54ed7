"""A worker's tasks: its slice times the trials, stable ids and seeds, bad rows passed on."""

from __future__ import annotations

import json
from pathlib import Path

from matrixhpc.data.readers import RowError
from matrixhpc.runtime.admission import slice_items, task_seed
from matrixhpc.task import Task


def _items(path: Path, shard: tuple[int, int], seed: int = 7) -> list[Task | RowError]:
    return list(
        slice_items(
            str(path),
            limit=None,
            shard=shard,
            required=["q"],
            trials=2,
            origin=f"w{shard[0]}",
            run_seed=seed,
        )
    )


def test_slices_trials_ids_and_seeds(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    rows = [json.dumps({"q": i}) for i in range(5)]
    rows.insert(2, json.dumps({"no_q": 1}))
    data.write_text("\n".join(rows) + "\n")
    both = _items(data, (0, 2)) + _items(data, (1, 2))
    tasks = [t for t in both if isinstance(t, Task)]
    errors = [e for e in both if isinstance(e, RowError)]
    assert sorted(t.id for t in tasks) == sorted(
        f"r{r}-t{k}" for r in (0, 1, 3, 4, 5) for k in (0, 1)
    )
    assert len(errors) == 1 and errors[0].index == 2
    assert all(t.seed == task_seed(7, t.id) and t.state["trial"] in (0, 1) for t in tasks)
    assert {t.origin for t in tasks if int(t.id[1]) % 2 == 0} == {"w0"}
    first = [(t.id, t.seed) for t in _items(data, (0, 2)) if isinstance(t, Task)]
    again = [(t.id, t.seed) for t in _items(data, (0, 2)) if isinstance(t, Task)]
    assert first == again, "a restarted worker makes the very same tasks"


def test_seeds_depend_on_run_seed_and_id() -> None:
    assert task_seed(0, "r1-t0") != task_seed(1, "r1-t0")
    assert task_seed(0, "r1-t0") != task_seed(0, "r1-t1")
    assert task_seed(3, "r9-t2") == task_seed(3, "r9-t2")
