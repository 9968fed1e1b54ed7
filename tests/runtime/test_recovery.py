"""Rebuilding a worker's state from journal records: pure, never raises."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from matrixhpc.codec import FrameType, pack, task_to_wire, unpack
from matrixhpc.runtime.recovery import (
    ACKED,
    ADMIT,
    DONE,
    SENT,
    STEP,
    TASK,
    Admission,
    Pending,
    acked_record,
    admit_record,
    done_record,
    recover,
    sent_record,
    snapshot_records,
    step_record,
    task_record,
)
from matrixhpc.task import END, Task, Turn


def _task(task_id: str = "t1", hop: int = 0, attempt: int = 0, **kw: Any) -> Task:
    return Task(
        id=task_id,
        seed=7,
        row={"q": "?"},
        origin="w0",
        next="student",
        attempt=attempt,
        token=99,
        hop=hop,
        created=1.0,
        **kw,
    )


def _sent(task: Task, peer: str = "w2", kind: FrameType = FrameType.TASK) -> list[Any]:
    return sent_record(Pending(task, peer, int(kind)))


def _through_journal(records: list[list[Any]]) -> list[list[Any]]:
    """What replay gives back: each record packed and unpacked on its own."""
    return [unpack(pack(r)) for r in records]


def test_record_layouts() -> None:
    task = _task(hop=3, attempt=1)
    assert admit_record(task, 5.5) == [ADMIT, "t1", 99, 1, {"q": "?"}, 5.5]
    assert task_record(task) == [TASK, task_to_wire(task)]
    assert _sent(task, "w4", FrameType.RETURN) == [SENT, "t1", 1, 3, "w4", int(FrameType.RETURN)]
    assert acked_record(("t1", 99, 1, 3)) == [ACKED, "t1", 99, 1, 3]
    assert done_record("t1") == [DONE, "t1"]
    assert len({ADMIT, TASK, STEP, SENT, ACKED, DONE}) == 6


def test_admit_then_done() -> None:
    task = _task()
    task.token = 42
    admit = admit_record(task, 12.5)
    state = recover(_through_journal([admit]))
    assert state.admitted == {"t1": Admission(42, 0, {"q": "?"}, 12.5)}
    state = recover(_through_journal([admit, done_record("t1")]))
    assert state.admitted == {}
    assert state.done == {"t1"}
    assert (state.records, state.skipped) == (2, 0)


def test_a_later_admit_is_the_current_attempt() -> None:
    first, second = _task(attempt=0), _task(attempt=1)
    state = recover([admit_record(first, 1.0), admit_record(second, 9.0)])
    assert state.admitted["t1"] == Admission(99, 1, {"q": "?"}, 9.0)


def _stepped(task: Task, turn: Turn | None, **changes: Any) -> list[Any]:
    for name, value in changes.items():
        setattr(task, name, value)
    return step_record(task, turn)


def test_task_and_step_deltas_rebuild_the_task() -> None:
    live = _task()
    # each record is encoded when it is appended, as the journal does
    records = _through_journal([task_record(live)])
    t1: Turn = {"role": "student", "content": "B", "usage": {"completion_tokens": 3}}
    live.history.append(t1)
    records += _through_journal(
        [_stepped(live, t1, hop=1, state={"answer": "B"}, next="teacher", updated=2.0)]
    )
    records += _through_journal([_stepped(live, None, hop=2, next="extractor", updated=3.0)])
    t3: Turn = {"role": "extractor", "content": "", "data": {"ok": True}}
    live.history.append(t3)
    records += _through_journal(
        [_stepped(live, t3, hop=3, next=END, status="failed", error="boom", updated=4.0)]
    )
    state = recover(records)
    assert state.skipped == 0
    got = state.held["t1"]
    assert got == live
    assert got.history == [t1, t3]
    assert (got.hop, got.next, got.status, got.error, got.updated) == (
        3,
        END,
        "failed",
        "boom",
        4.0,
    )
    assert got.state == {"answer": "B"}
    assert state.seen == {("t1", 99, 0, 0)}


@pytest.mark.parametrize("stale_hop", [1, 2])
def test_a_step_at_or_below_the_current_hop_is_ignored(stale_hop: int) -> None:
    live = _task()
    records = [task_record(live)]
    turn: Turn = {"role": "student", "content": "first"}
    records.append(_stepped(copy.deepcopy(live), turn, hop=1, state={"n": 1}, next="teacher"))
    records.append(_stepped(copy.deepcopy(live), {"role": "t", "content": "x"}, hop=2, next="x"))
    replayed_twice: Turn = {"role": "again", "content": "dup"}
    records.append(_stepped(copy.deepcopy(live), replayed_twice, hop=stale_hop, next="zzz"))
    got = recover(records).held["t1"]
    assert got.hop == 2
    assert got.next == "x"
    assert [t["content"] for t in got.history] == ["first", "x"]


def test_a_step_for_a_task_not_held_is_ignored() -> None:
    state = recover([_stepped(_task("ghost"), {"role": "a"}, hop=1)])
    assert state.held == {}
    assert state.skipped == 0


def test_sent_then_acked_releases_the_task() -> None:
    task = _task(hop=4)
    records = [task_record(task), _sent(task), acked_record(("t1", 99, 0, 4))]
    state = recover(_through_journal(records))
    assert state.pending == {}
    assert state.held == {}
    assert state.skipped == 0


def test_sent_without_ack_stays_pending() -> None:
    task = _task(hop=4, attempt=2)
    state = recover(_through_journal([task_record(task), _sent(task, "w7", FrameType.RETURN)]))
    pending = state.pending["t1"]
    assert pending.task is state.held["t1"]  # one object: held and awaiting its ACK
    assert pending.task == task
    assert (pending.peer, pending.kind, pending.key) == ("w7", FrameType.RETURN, ("t1", 99, 2, 4))


def test_sent_after_steps_matches_the_stepped_hop() -> None:
    task = _task()
    records = [task_record(task)]
    records.append(_stepped(task, {"role": "a"}, hop=1, next="b"))
    records.append(_sent(task))  # handed off after the step: hop 1
    state = recover(records)
    assert state.pending["t1"].key == ("t1", 99, 0, 1)


@pytest.mark.parametrize(
    "ack",
    [("t1", 99, 0, 3), ("t1", 99, 1, 4), ("t2", 99, 0, 4), ("t1", 98, 0, 4)],
    ids=["old-hop", "other-attempt", "other-id", "other-admission"],
)
def test_an_ack_for_another_hand_off_releases_nothing(ack: tuple[str, int, int, int]) -> None:
    task = _task(hop=4)
    state = recover([task_record(task), _sent(task), acked_record(ack)])
    assert set(state.pending) == {"t1"}
    assert set(state.held) == {"t1"}


def test_sent_that_does_not_match_the_held_task_is_not_pending() -> None:
    task = _task(hop=4)
    other_hop = _task(hop=5)
    state = recover([task_record(task), _sent(other_hop), _sent(_task("nobody"))])
    assert state.pending == {}
    assert state.skipped == 0


def test_a_later_task_replaces_the_held_copy_and_clears_pending() -> None:
    first = _task(hop=2)
    again = _task(hop=6, state={"back": True})  # the task came back later
    records = [task_record(first), _sent(first), task_record(again)]
    state = recover(_through_journal(records))
    assert state.pending == {}
    assert state.held["t1"] == again
    assert state.seen == {("t1", 99, 0, 2), ("t1", 99, 0, 6)}


def test_done_clears_admitted_held_and_pending() -> None:
    task = _task(hop=3)
    records = [
        admit_record(task, 1.0),
        task_record(task),
        _sent(task, "w0", FrameType.RETURN),
        admit_record(_task("t2"), 2.0),
        done_record("t1"),
    ]
    state = recover(_through_journal(records))
    assert set(state.admitted) == {"t2"}
    assert state.held == {}
    assert state.pending == {}
    assert state.done == {"t1"}


MALFORMED: list[Any] = [
    [],
    None,
    7,
    "ADMIT",
    {"type": 1},
    [99, "t1"],  # unknown type
    [[1], "x"],  # unhashable type tag
    [ADMIT, "t9"],  # short
    [ADMIT, "t9", "not-an-int", 0, {}, 1.0],
    [ADMIT, ["unhashable"], 1, 0, {}, 1.0],
    [ADMIT, "t9", 1, 0, {}, 1.0, "extra"],
    [TASK, "not a task"],
    [TASK, [1, 2, 3]],
    [STEP, "t1", 5],  # short
    [STEP, "t1", "hop?", None, {}, "x", "running", None, 0.0],
    [SENT, "t1", 0, 0, "w2", "kind?"],
    [SENT, "t1"],
    [ACKED, "t1", 0, 0],
    [ACKED, ["t1"], 99, 0, 0],
    [DONE],
    [DONE, {"not": "hashable"}],
]


def test_malformed_and_unknown_records_are_skipped_and_counted() -> None:
    good = _task()
    records = [task_record(good), *MALFORMED, admit_record(_task("t2"), 3.0)]
    state = recover(records)
    assert state.records == len(records)
    assert state.skipped == len(MALFORMED)
    assert state.held == {"t1": good}  # the bad STEP/SENT/ACKED/DONE changed nothing
    assert state.pending == {}
    assert state.done == set()
    assert set(state.admitted) == {"t2"}  # good records after bad ones still apply


@pytest.mark.parametrize("bad", MALFORMED, ids=[f"m{i}" for i in range(len(MALFORMED))])
def test_each_malformed_record_alone_is_skipped(bad: Any) -> None:
    state = recover([task_record(_task()), bad])
    assert (state.records, state.skipped) == (2, 1)


def test_snapshot_reproduces_the_state() -> None:
    a, b, c = _task("a", hop=2), _task("b", hop=5, attempt=1), _task("c", hop=1)
    records = [
        admit_record(a, 1.0),
        admit_record(_task("x"), 2.0),  # admitted, out with a peer: not held
        *_through_journal([task_record(a)]),  # encoded before a is stepped
        _stepped(a, {"role": "s", "content": "1"}, hop=3, next="t", state={"k": [1]}),
        task_record(b),
        _sent(b, "w5", FrameType.RETURN),
        task_record(c),
        _sent(c, "w6"),
        acked_record(("c", 99, 0, 1)),
        admit_record(_task("gone"), 3.0),
        done_record("gone"),
    ]
    state = recover(_through_journal(records))
    assert set(state.admitted) == {"a", "x"}
    assert set(state.held) == {"a", "b"}
    assert set(state.pending) == {"b"}
    snap = snapshot_records(state.admitted, state.held, state.pending)
    again = recover(_through_journal(snap))
    assert again.skipped == 0
    assert again.admitted == state.admitted
    assert again.held == state.held
    assert again.held["a"].history == [{"role": "s", "content": "1"}]
    assert {k: (p.peer, p.kind, p.key, p.task) for k, p in again.pending.items()} == {
        k: (p.peer, p.kind, p.key, p.task) for k, p in state.pending.items()
    }
    assert again.pending["b"].task is again.held["b"]
    # a snapshot followed by the records written after it still applies them
    later = recover(_through_journal([*snap, acked_record(("b", 99, 1, 5))]))
    assert later.pending == {}
    assert set(later.held) == {"a"}


def test_empty_journal() -> None:
    state = recover([])
    assert (state.records, state.skipped) == (0, 0)
    assert state.admitted == {}
    assert state.held == {}
    assert state.pending == {}
