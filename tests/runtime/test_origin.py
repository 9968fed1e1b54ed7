"""OriginBook with a real ShardWriter: each admitted task is written exactly once."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path

import pytest

from matrixhpc.data.writers import ShardWriter
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.task import Task


def _task(i: int, status: str = "ok") -> Task:
    return Task(id=f"t{i}", seed=i, row={"i": i}, origin="w0", status=status)


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for p in sorted(out.glob("part-*.jsonl")) for line in p.open()]


def _book(tmp_path: Path, window: int = 4) -> OriginBook:
    return OriginBook(ShardWriter(tmp_path / "out", "w0", shard_records=100), window)


@pytest.mark.asyncio
async def test_exactly_once_write(tmp_path: Path) -> None:
    book = _book(tmp_path)
    tasks = [_task(i, "ok" if i % 2 else "failed") for i in range(3)]
    for t in tasks:
        await book.admit(t)
    assert book.admitted == 3 and set(book.in_flight) == {"t0", "t1", "t2"}
    for t in tasks:
        assert book.complete(t) is True
    book.writer.close()
    recs = _records(tmp_path / "out")
    assert [r["id"] for r in recs] == ["t0", "t1", "t2"]
    assert recs[1] == tasks[1].to_record()
    assert (book.ok, book.failed, book.duplicates) == (1, 2, 0)
    assert not book.in_flight and book.written == {"t0", "t1", "t2"}


@pytest.mark.asyncio
async def test_duplicate_return_is_dropped_and_counted(tmp_path: Path) -> None:
    book = _book(tmp_path)
    task = _task(1)
    await book.admit(task)
    copy_of = copy.deepcopy(task)  # the same task surfacing twice (a re-sent hop)
    assert book.complete(task) is True
    assert book.complete(copy_of) is False
    assert book.complete(task) is False
    book.writer.close()
    assert [r["id"] for r in _records(tmp_path / "out")] == ["t1"]
    assert (book.ok, book.failed, book.duplicates) == (1, 0, 2)


@pytest.mark.asyncio
async def test_return_of_a_task_never_admitted_is_dropped(tmp_path: Path) -> None:
    book = _book(tmp_path)
    assert book.complete(_task(9)) is False
    assert book.duplicates == 1
    book.writer.close()
    assert _records(tmp_path / "out") == []


@pytest.mark.asyncio
async def test_stale_or_forged_token_is_dropped(tmp_path: Path) -> None:
    book = _book(tmp_path)
    task = _task(1)
    await book.admit(task)
    forged = copy.deepcopy(task)
    forged.token ^= 2
    assert book.complete(forged) is False
    assert book.duplicates == 1 and "t1" in book.in_flight
    assert book.complete(task) is True  # the genuine return is still accepted
    book.writer.close()
    assert len(_records(tmp_path / "out")) == 1


@pytest.mark.asyncio
async def test_admit_assigns_distinct_nonzero_tokens(tmp_path: Path) -> None:
    book = _book(tmp_path, window=50)
    tasks = [_task(i) for i in range(50)]
    for t in tasks:
        await book.admit(t)
    tokens = [t.token for t in tasks]
    assert all(tok != 0 for tok in tokens)
    assert len(set(tokens)) == 50
    assert book.in_flight == {t.id: t.token for t in tasks}


@pytest.mark.asyncio
async def test_window_blocks_admission_until_a_completion(tmp_path: Path) -> None:
    book = _book(tmp_path, window=2)
    a, b, c = _task(1), _task(2), _task(3)
    await book.admit(a)
    await book.admit(b)
    third = asyncio.create_task(book.admit(c))
    await asyncio.sleep(0.05)
    assert not third.done()  # window full
    assert book.complete(a)
    await asyncio.wait_for(third, 1.0)
    assert book.admitted == 3 and set(book.in_flight) == {"t2", "t3"}


@pytest.mark.asyncio
async def test_duplicates_do_not_release_the_window(tmp_path: Path) -> None:
    book = _book(tmp_path, window=1)
    a = _task(1)
    await book.admit(a)
    assert book.complete(a)
    # the slot is free once; duplicates must not free more slots
    assert not book.complete(a)
    assert not book.complete(_task(7))
    await asyncio.wait_for(book.admit(_task(2)), 1.0)
    blocked = asyncio.create_task(book.admit(_task(3)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
