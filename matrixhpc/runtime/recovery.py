"""What a worker journals, and how its state is rebuilt from the journal. Pure.

Records (msgpack arrays, first item the type):

- ``ADMIT  id token attempt row issued_at``  this origin (re)issued a task
- ``TASK   task``                            this worker holds the task in this state
- ``STEP   id hop turn state next status error updated``  one local step (a delta)
- ``SENT   id attempt hop peer kind``        handed off / returned; awaiting the ACK
- ``ACKED  id token attempt hop``            the peer has it: no longer held here
- ``DONE   id``                              the origin wrote the task's record

Steps are journaled as deltas so that a dialogue's history is written once, not
once per step; a task's state is its last TASK snapshot plus the STEP deltas after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from matrixhpc.codec import CodecError, task_from_wire, task_to_wire
from matrixhpc.task import Task, Turn

ADMIT, TASK, STEP, SENT, ACKED, DONE = 1, 2, 3, 4, 5, 6

# (id, token, attempt, hop): one hand-off. The token is random per admission, so a task
# re-admitted by an origin that lost its journal is never mistaken for a copy peers saw.
Key = tuple[str, int, int, int]


@dataclass(slots=True)
class Admission:
    token: int
    attempt: int
    row: dict[str, Any]
    issued_at: float


@dataclass(slots=True)
class Pending:
    task: Task
    peer: str
    kind: int  # codec FrameType.TASK or RETURN
    sent_at: float = 0.0
    tries: int = 0  # resends without an ACK so far

    @property
    def key(self) -> Key:
        return key_of(self.task)


@dataclass
class Recovered:
    admitted: dict[str, Admission] = field(default_factory=dict)
    held: dict[str, Task] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    seen: set[Key] = field(default_factory=set)
    records: int = 0
    skipped: int = 0


def key_of(task: Task) -> Key:
    return (task.id, task.token, task.attempt, task.hop)


def admit_record(task: Task, issued_at: float) -> list[Any]:
    return [ADMIT, task.id, task.token, task.attempt, task.row, issued_at]


def task_record(task: Task) -> list[Any]:
    return [TASK, task_to_wire(task)]


def step_record(task: Task, turn: Turn | None) -> list[Any]:
    return [
        STEP,
        task.id,
        task.hop,
        turn,
        task.state,
        task.next,
        task.status,
        task.error,
        task.updated,
    ]


def sent_record(pending: Pending) -> list[Any]:
    t = pending.task
    return [SENT, t.id, t.attempt, t.hop, pending.peer, pending.kind]


def acked_record(key: Key) -> list[Any]:
    return [ACKED, *key]


def done_record(task_id: str) -> list[Any]:
    return [DONE, task_id]


def recover(records: Iterable[list[Any]]) -> Recovered:
    state = Recovered()
    for record in records:
        state.records += 1
        try:
            _APPLY[record[0]](state, record)
        except (KeyError, IndexError, TypeError, ValueError, CodecError):
            state.skipped += 1  # an unknown or malformed record: skip, never die
    return state


def _admit(s: Recovered, r: list[Any]) -> None:
    _, task_id, token, attempt, row, issued_at = r
    s.admitted[task_id] = Admission(int(token), int(attempt), row, float(issued_at))


def _task(s: Recovered, r: list[Any]) -> None:
    task = task_from_wire(r[1])
    s.held[task.id] = task
    s.pending.pop(task.id, None)
    s.seen.add(key_of(task))


def _step(s: Recovered, r: list[Any]) -> None:
    _, task_id, hop, turn, state, next_role, status, error, updated = r
    task = s.held.get(task_id)
    if task is None or hop <= task.hop:
        return
    s.pending.pop(task_id, None)  # stepped here again: no longer awaiting an ACK
    if turn is not None:
        task.history.append(turn)
    task.hop, task.state, task.next = hop, state, next_role
    task.status, task.error, task.updated = status, error, updated


def _sent(s: Recovered, r: list[Any]) -> None:
    _, task_id, attempt, hop, peer, kind = r
    task = s.held.get(task_id)
    if task is not None and (task.attempt, task.hop) == (attempt, hop):
        s.pending[task_id] = Pending(task, peer, int(kind), 0.0)


def _acked(s: Recovered, r: list[Any]) -> None:
    key = (r[1], r[2], r[3], r[4])
    pending = s.pending.get(key[0])
    if pending is not None and pending.key == key:
        del s.pending[key[0]]
        s.held.pop(key[0], None)


def _done(s: Recovered, r: list[Any]) -> None:
    task_id = r[1]
    s.done.add(task_id)
    s.admitted.pop(task_id, None)
    s.held.pop(task_id, None)
    s.pending.pop(task_id, None)


_APPLY = {ADMIT: _admit, TASK: _task, STEP: _step, SENT: _sent, ACKED: _acked, DONE: _done}


def snapshot_records(
    admitted: dict[str, Admission], held: dict[str, Task], pending: dict[str, Pending]
) -> list[list[Any]]:
    """The live state as records: what a compacted journal starts with."""
    out: list[list[Any]] = []
    for task_id, a in admitted.items():
        out.append([ADMIT, task_id, a.token, a.attempt, a.row, a.issued_at])
    out += [task_record(task) for task in held.values()]
    out += [sent_record(p) for p in pending.values()]
    return out
