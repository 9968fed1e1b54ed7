"""Two copies of one task at one worker: the one further along wins, admissions apart."""

from __future__ import annotations

from matrixhpc.runtime.copies import still_current, supersedes
from matrixhpc.task import Task


def _copy(hop: int, token: int = 7, attempt: int = 0) -> Task:
    return Task(id="r1-t0", seed=0, row={}, origin="w3", hop=hop, token=token, attempt=attempt)


def test_a_late_resend_of_an_earlier_hop_does_not_replace_the_copy_ahead() -> None:
    ahead = _copy(hop=16)
    assert supersedes(ahead, _copy(hop=12))  # dropped on arrival: ahead keeps going
    assert supersedes(ahead, _copy(hop=16))
    assert not supersedes(ahead, _copy(hop=17))  # a copy further along replaces it
    assert not supersedes(None, _copy(hop=12))


def test_a_later_attempt_replaces_an_earlier_one() -> None:
    assert not supersedes(_copy(hop=20, attempt=0), _copy(hop=2, attempt=1))
    assert supersedes(_copy(hop=2, attempt=1), _copy(hop=20, attempt=0))


def test_copies_of_different_admissions_are_both_driven() -> None:
    old, new = _copy(hop=12, token=7), _copy(hop=3, token=8)
    assert not supersedes(new, old)
    assert not supersedes(old, new)
    assert still_current(new, old)
    assert still_current(old, new)


def test_a_replaced_or_written_copy_is_no_longer_current() -> None:
    mine = _copy(hop=5)
    assert still_current(mine, mine)
    assert not still_current(_copy(hop=6), mine)  # same admission, replaced
    assert not still_current(None, mine)  # its record was written here
