"""The liveness audit: a held task that nothing drives is found, once, and handed back."""

from __future__ import annotations

import logging

import pytest

from matrixhpc.runtime.liveness import Liveness
from matrixhpc.task import Task


def _task(task_id: str, hop: int = 0) -> Task:
    return Task(id=task_id, seed=0, row={}, origin="w0", hop=hop)


def test_a_task_nothing_drives_is_reported_at_the_second_audit(
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = Liveness()
    held = {"t1": _task("t1"), "t2": _task("t2"), "t3": _task("t3")}
    with live.drive("t1"):
        assert live.audit(held, pending={"t2"}) == []  # t3 is only a suspect so far
        with caplog.at_level(logging.ERROR):
            assert live.audit(held, pending={"t2"}) == [held["t3"]]
    assert "t3" in caplog.text
    assert live.redriven == 1


def test_a_task_that_moved_between_audits_is_not_stranded() -> None:
    live = Liveness()
    held = {"t1": _task("t1", hop=2)}
    assert live.audit(held, pending=()) == []
    held["t1"] = _task("t1", hop=3)  # stepped (or replaced) since the last audit
    assert live.audit(held, pending=()) == []
    assert live.audit(held, pending=()) == [held["t1"]]


def test_drive_marks_nest_and_clear() -> None:
    live = Liveness()
    held = {"t1": _task("t1")}
    with live.drive("t1"), live.drive("t1"):
        pass
    assert not live.driving
    live.audit(held, pending=())
    with live.drive("t1"):
        assert live.audit(held, pending=()) == []  # driven again: no longer a suspect
    assert live.audit(held, pending=()) == []
    assert live.audit(held, pending=()) == [held["t1"]]
