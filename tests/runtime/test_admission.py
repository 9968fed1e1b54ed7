"""A worker's tasks: its slice times the trials, stable ids and seeds, bad rows passed on."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

from matrixhpc.codec import decode, encode_task, pack
from matrixhpc.data.readers import RowError, count_rows
from matrixhpc.runtime.admission import slice_items, task_seed
from matrixhpc.runtime.recovery import task_record
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
    assert len(errors) == 1
    assert errors[0].index == 2
    assert all(t.seed == task_seed(7, t.id) and t.state["trial"] in (0, 1) for t in tasks)
    assert {t.origin for t in tasks if int(t.id[1]) % 2 == 0} == {"w0"}
    first = [(t.id, t.seed) for t in _items(data, (0, 2)) if isinstance(t, Task)]
    again = [(t.id, t.seed) for t in _items(data, (0, 2)) if isinstance(t, Task)]
    assert first == again, "a restarted worker makes the very same tasks"


def test_seeds_depend_on_run_seed_and_id() -> None:
    assert task_seed(0, "r1-t0") != task_seed(1, "r1-t0")
    assert task_seed(0, "r1-t0") != task_seed(0, "r1-t1")
    assert task_seed(3, "r9-t2") == task_seed(3, "r9-t2")


def test_bad_rows_of_every_kind_are_errors_and_every_task_can_travel(tmp_path: Path) -> None:
    """Good rows with every kind of bad row among them, over two files and two workers:
    all good rows become tasks that encode as frames and journal records (the hot path
    that used to crash on them), every bad row is one RowError with a reason, and the
    launcher's count agrees with what the workers admit."""
    good = [json.dumps({"q": f"j{i}"}) for i in range(12)]
    bad = [
        '{"q": ' + "[" * 5000 + "]" * 5000 + "}",  # nested beyond what json parses
        '{"q": ' + "[" * 200 + "]" * 200 + "}",  # parses, but beyond what is carried
        '{"q": ' + str(2**64) + "}",  # wider than 64 bits
        '{"q": NaN}',
        '{"q": "\\ud800"}',  # a lone surrogate: not encodable as UTF-8
        '{"q": "broken',
        "[1, 2]",
        '{"no_q": 1}',
    ]
    lines = good[:4] + bad[:4] + good[4:8] + bad[4:] + good[8:]
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode())
    (tmp_path / "b.csv").write_bytes(b"q,x\nc0,1\nragged\nc1,2\nlong,3,extra\n\xff,4\nc2,5\n")
    pattern = str(tmp_path / "*")
    items = [
        item
        for shard in ((0, 2), (1, 2))
        for item in slice_items(
            pattern, limit=None, shard=shard, required=["q"], trials=2, origin="w", run_seed=1
        )
    ]
    tasks = [t for t in items if isinstance(t, Task)]
    errors = [e for e in items if isinstance(e, RowError)]
    questions = sorted({t.row["q"] for t in tasks})
    assert questions == sorted([f"j{i}" for i in range(12)] + [f"c{i}" for i in range(3)])
    assert len(errors) == len(bad) + 3
    assert all(e.reason for e in errors)
    assert len(tasks) == count_rows(pattern, None, ["q"]) * 2
    for task in tasks:
        assert decode(encode_task(task))[1][1].row == task.row
        pack(task_record(task))
