"""Which of two copies of one task a worker keeps driving. Pure.

Copies of a task arise legitimately: a sender killed before its journal caught up
replays and sends an earlier hop again; an ACK lost to a restart makes the sender resend;
an origin re-issues a task whose lease expired; an origin that lost its journal admits a
task again under a new token. A worker holds one copy per id. The rules:

- of two copies of the same admission (same token), the one further along wins; a late
  resend of an earlier hop must never replace it, or the lagging copy runs into hand-off
  keys its peers have already seen and the task stalls;
- copies of different admissions are both driven: only the origin can tell which one it
  issued, and it drops the other when it returns.
"""

from __future__ import annotations

from matrixhpc.task import Task


def supersedes(mine: Task | None, incoming: Task) -> bool:
    """Whether the held copy ``mine`` makes ``incoming`` surplus on arrival."""
    return (
        mine is not None
        and mine.token == incoming.token
        and (mine.attempt, mine.hop) >= (incoming.attempt, incoming.hop)
    )


def still_current(mine: Task | None, task: Task) -> bool:
    """Whether ``task`` is still worth driving when the worker holds ``mine`` for its id
    (None: the id is no longer held, e.g. its record has been written here)."""
    return mine is task or (mine is not None and mine.token != task.token)
