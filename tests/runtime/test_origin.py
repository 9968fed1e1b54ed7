"""OriginBook with a real ShardWriter and Journal: each admitted task is written exactly once."""

from __future__ import annotations

import asyncio
import copy
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from matrixhpc.data.writers import ShardWriter, recover_shards
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.recovery import ADMIT, DONE, Admission, recover
from matrixhpc.task import Task

MakeBook = Callable[..., OriginBook]


class FakeClock:
    """An injected clock: leases are tested without waiting for them."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _task(i: int, status: str = "ok") -> Task:
    return Task(id=f"t{i}", seed=i, row={"i": i}, origin="w0", status=status)


def _records(out: Path) -> list[dict[str, object]]:
    files = sorted(out.glob("part-*.jsonl"))
    return [json.loads(line) for p in files for line in p.read_text().splitlines()]


async def _journaled(journal: Journal, count: int) -> list[list[Any]]:
    """The records on disk once ``count`` of them are written."""
    await journal.commit()  # returns once the group being written has landed too
    assert journal.stats["records"] >= count
    return list(Journal(journal.dir).replay())


@pytest_asyncio.fixture
async def make_book(tmp_path: Path) -> AsyncIterator[MakeBook]:
    books: list[OriginBook] = []

    def make(
        window: int = 4,
        recovered: list[dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> OriginBook:
        journal = Journal(tmp_path / "journal" / "w0", "off", commit_interval=0.001)
        journal.open()
        writer = ShardWriter(tmp_path / "out", "w0", shard_records=100, recovered=recovered)
        books.append(OriginBook(writer, journal, window, clock=clock))
        return books[-1]

    yield make
    await asyncio.sleep(0.02)  # let a group in flight land: close() does not wait for it
    for book in books:
        await book.journal.close()
        book.writer.close()


@pytest.mark.asyncio
async def test_exactly_once_write(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book()
    tasks = [_task(i, "ok" if i % 2 else "failed") for i in range(3)]
    for t in tasks:
        await book.admit(t)
    assert book.admitted == 3
    assert set(book.in_flight) == {"t0", "t1", "t2"}
    for t in tasks:
        assert book.complete(t) is True
    book.writer.close()
    recs = _records(tmp_path / "out")
    assert [r["id"] for r in recs] == ["t0", "t1", "t2"]
    assert recs[1] == tasks[1].to_record()
    assert (book.ok, book.failed, book.duplicates, book.stale) == (1, 2, 0, 0)
    assert not book.in_flight
    assert book.written == {"t0", "t1", "t2"}


@pytest.mark.asyncio
async def test_admit_and_complete_are_journaled(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book()
    a, b = _task(1), _task(2)
    before = time.time()
    await book.admit(a)
    await book.admit(b)
    assert book.complete(a)
    records = await _journaled(book.journal, 3)
    assert [r[0] for r in records] == [ADMIT, ADMIT, DONE]
    _, task_id, token, attempt, row, issued_at = records[0]
    assert (task_id, token, attempt, row) == ("t1", a.token, 0, {"i": 1})
    assert before <= issued_at <= time.time()
    assert records[2] == [DONE, "t1"]
    state = recover(records)
    assert set(state.admitted) == {"t2"}
    assert state.done == {"t1"}
    assert state.admitted["t2"] == book.in_flight["t2"]


@pytest.mark.asyncio
async def test_duplicate_return_is_dropped_and_counted(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book()
    task = _task(1)
    await book.admit(task)
    copy_of = copy.deepcopy(task)  # the same task surfacing twice (a re-sent hop)
    assert book.complete(task) is True
    assert book.complete(copy_of) is False
    assert book.complete(task) is False
    book.writer.close()
    assert [r["id"] for r in _records(tmp_path / "out")] == ["t1"]
    assert (book.ok, book.failed, book.duplicates, book.stale) == (1, 0, 2, 0)
    assert [r[0] for r in await _journaled(book.journal, 2)] == [ADMIT, DONE]  # one DONE


@pytest.mark.asyncio
async def test_return_of_a_task_never_admitted_is_dropped(
    tmp_path: Path, make_book: MakeBook
) -> None:
    book = make_book()
    assert book.accepts(_task(9)) is False
    assert book.complete(_task(9)) is False
    assert (book.stale, book.duplicates) == (1, 0)
    book.writer.close()
    assert _records(tmp_path / "out") == []


@pytest.mark.asyncio
async def test_stale_or_forged_token_is_dropped(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book()
    task = _task(1)
    await book.admit(task)
    forged = copy.deepcopy(task)
    forged.token ^= 2
    assert book.accepts(forged) is False
    assert book.complete(forged) is False
    assert book.stale == 1
    assert book.duplicates == 0
    assert "t1" in book.in_flight
    wrong_attempt = copy.deepcopy(task)
    wrong_attempt.attempt = 1
    assert book.complete(wrong_attempt) is False
    assert book.stale == 2
    assert book.accepts(task) is True
    assert book.complete(task) is True  # the genuine return is still accepted
    book.writer.close()
    assert len(_records(tmp_path / "out")) == 1


@pytest.mark.asyncio
async def test_admit_assigns_distinct_nonzero_tokens(make_book: MakeBook) -> None:
    book = make_book(window=50)
    tasks = [_task(i) for i in range(50)]
    for t in tasks:
        await book.admit(t)
    tokens = [t.token for t in tasks]
    assert all(tok != 0 for tok in tokens)
    assert len(set(tokens)) == 50
    assert {k: (a.token, a.attempt, a.row) for k, a in book.in_flight.items()} == {
        t.id: (t.token, 0, t.row) for t in tasks
    }


@pytest.mark.asyncio
async def test_window_blocks_admission_until_a_completion(make_book: MakeBook) -> None:
    book = make_book(window=2)
    a, b, c = _task(1), _task(2), _task(3)
    await book.admit(a)
    await book.admit(b)
    third = asyncio.create_task(book.admit(c))
    await asyncio.sleep(0.05)
    assert not third.done()  # window full
    assert book.complete(a)
    await asyncio.wait_for(third, 1.0)
    assert book.admitted == 3
    assert set(book.in_flight) == {"t2", "t3"}


@pytest.mark.asyncio
async def test_duplicates_and_stale_returns_do_not_release_the_window(make_book: MakeBook) -> None:
    book = make_book(window=1)
    a = _task(1)
    await book.admit(a)
    assert book.complete(a)
    # the slot is free once; duplicates and strangers must not free more slots
    assert not book.complete(a)
    assert not book.complete(_task(7))
    await asyncio.wait_for(book.admit(_task(2)), 1.0)
    blocked = asyncio.create_task(book.admit(_task(3)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked


@pytest.mark.asyncio
async def test_expired_lists_only_old_tasks_not_held_here(make_book: MakeBook) -> None:
    clock = FakeClock()
    book = make_book(clock=clock)
    for i in range(3):
        await book.admit(_task(i))
    clock.now += 5.0
    assert book.expired(10.0, set()) == []
    clock.now += 6.0
    assert sorted(book.expired(10.0, set())) == ["t0", "t1", "t2"]
    assert sorted(book.expired(10.0, {"t1"})) == ["t0", "t2"]


@pytest.mark.asyncio
async def test_a_renewed_lease_does_not_expire(make_book: MakeBook) -> None:
    clock = FakeClock()
    book = make_book(clock=clock)
    task = _task(1)
    await book.admit(task)
    for _ in range(10):  # a task reported moving is never re-issued, however long it runs
        clock.now += 8.0
        assert book.renew("t1", task.token, task.attempt) is True
        assert book.expired(10.0, set()) == []
    assert book.renew("t1", task.token + 2, 0) is False  # a forged renewal changes nothing
    assert book.renew("nope", task.token, 0) is False
    clock.now += 11.0
    assert book.expired(10.0, set()) == ["t1"]


@pytest.mark.asyncio
async def test_after_a_pause_every_lease_starts_over(make_book: MakeBook) -> None:
    clock = FakeClock()
    book = make_book(clock=clock)
    await book.admit(_task(1))
    clock.now += 60.0  # this process was stopped: renewals wait unread in its inbox
    book.hear_all()
    assert book.expired(10.0, set()) == []
    clock.now += 11.0
    assert book.expired(10.0, set()) == ["t1"]


@pytest.mark.asyncio
async def test_each_attempt_waits_twice_as_long(make_book: MakeBook) -> None:
    clock = FakeClock()
    book = make_book(clock=clock)
    await book.admit(_task(1))
    for attempt, lease in [(0, 10.0), (1, 20.0), (2, 40.0)]:
        assert book.attempts("t1") == attempt + 1
        clock.now += lease - 1.0
        assert book.expired(10.0, set()) == []
        clock.now += 2.0
        assert book.expired(10.0, set()) == ["t1"]
        book.reissue("t1", seed=attempt, origin="w0")


@pytest.mark.asyncio
async def test_give_up_writes_one_failed_record(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book(window=1)
    task = _task(1)
    await book.admit(task)
    book.give_up("t1", "w0", "no attempt came back")
    assert book.failed == 1
    assert not book.in_flight
    late = _task(1)
    late.token = task.token
    assert book.complete(late) is False
    assert book.duplicates == 1
    await asyncio.wait_for(book.admit(_task(2)), 1.0)  # the window slot came back
    book.writer.close()
    recs = _records(tmp_path / "out")
    assert [(r["id"], r["status"], r["error"]) for r in recs] == [
        ("t1", "failed", "no attempt came back")
    ]


@pytest.mark.asyncio
async def test_first_finished_attempt_wins(tmp_path: Path, make_book: MakeBook) -> None:
    book = make_book(window=1)
    old = _task(1)
    await book.admit(old)
    issued_before = book.in_flight["t1"].issued_at
    new = book.reissue("t1", seed=99, origin="w0")
    assert (new.id, new.seed, new.row, new.origin) == ("t1", 99, {"i": 1}, "w0")
    assert new.attempt == 1
    assert new.token == old.token
    assert book.reissued == 1
    admission = book.in_flight["t1"]
    assert (admission.token, admission.attempt) == (old.token, 1)
    assert admission.issued_at >= issued_before  # a fresh lease
    # the old attempt was slow, not lost: whichever finishes first is written
    assert book.accepts(old) is True
    assert book.accepts(new) is True
    future = Task(id="t1", seed=0, row={}, origin="w0", attempt=2, token=old.token)
    assert book.accepts(future) is False  # an attempt never issued is forged
    # the re-issue reuses the admission's slot: no second slot is taken
    assert book.complete(old) is True
    new.status = "ok"
    assert book.complete(new) is False
    assert book.duplicates == 1
    await asyncio.wait_for(book.admit(_task(2)), 1.0)
    book.writer.close()
    recs = _records(tmp_path / "out")
    assert [(r["id"], r["attempt"]) for r in recs] == [("t1", 0)]
    records = await _journaled(book.journal, 4)
    assert [r[0] for r in records] == [ADMIT, ADMIT, DONE, ADMIT]
    assert [(r[0], r[1], r[3]) for r in records if r[0] == ADMIT][:2] == [
        (ADMIT, "t1", 0),
        (ADMIT, "t1", 1),
    ]


def _written(tmp_path: Path, statuses: dict[str, str]) -> None:
    writer = ShardWriter(tmp_path / "out", "w0", shard_records=2)
    for task_id, status in statuses.items():
        writer.write(Task(id=task_id, seed=0, row={}, origin="w0", status=status).to_record())
    writer.close()


@pytest.mark.asyncio
async def test_restore_from_journal_and_shards(tmp_path: Path, make_book: MakeBook) -> None:
    _written(tmp_path, {"t0": "ok", "t1": "failed", "t2": "ok"})
    shards = recover_shards(tmp_path / "out", "w0")
    admitted = {
        "t2": Admission(11, 0, {"i": 2}, 1.0),  # written already: not in flight
        "t3": Admission(13, 2, {"i": 3}, 2.0),
    }
    book = make_book(window=2, recovered=shards.shards)
    book.restore(admitted, shards)
    assert book.written == {"t0", "t1", "t2"}
    assert (book.ok, book.failed) == (2, 1)
    assert book.in_flight == {"t3": admitted["t3"]}
    assert book.admitted == 4
    assert book.known("t0")
    assert book.known("t3")
    assert not book.known("t4")
    # one slot is taken by t3: one admission passes, the next one waits
    await asyncio.wait_for(book.admit(_task(4)), 1.0)
    blocked = asyncio.create_task(book.admit(_task(5)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    # the restored task is accepted with the token and attempt it was issued with
    back = Task(id="t3", seed=3, row={"i": 3}, origin="w0", attempt=2, token=13, status="ok")
    assert book.complete(copy.deepcopy(back))
    await asyncio.wait_for(blocked, 1.0)
    assert book.complete(Task(id="t0", seed=0, row={}, origin="w0")) is False  # written before
    assert book.duplicates == 1
    assert book.ok == 3


@pytest.mark.asyncio
async def test_restore_with_more_in_flight_than_the_window_blocks_admission(
    tmp_path: Path, make_book: MakeBook
) -> None:
    _written(tmp_path, {})
    admitted = {f"t{i}": Admission(i + 1, 0, {}, 1.0) for i in range(3)}
    shards = recover_shards(tmp_path / "out", "w0")
    book = make_book(window=1, recovered=shards.shards)
    book.restore(admitted, shards)
    assert len(book.in_flight) == 3
    admit = asyncio.create_task(book.admit(_task(9)))
    await asyncio.sleep(0.05)
    blocked = not admit.done()
    admit.cancel()
    await asyncio.gather(admit, return_exceptions=True)
    assert blocked, "a 4th task was admitted with a window of 1"
