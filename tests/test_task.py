"""The Task record: last_turn, output_tokens, to_record."""

from __future__ import annotations

from matrixhpc.task import END, Task


def _task(**kw: object) -> Task:
    base: dict[str, object] = {"id": "t-1", "seed": 7, "row": {"q": "why?"}, "origin": "w0"}
    base.update(kw)
    return Task(**base)  # type: ignore[arg-type]


def test_last_turn_of_empty_history_is_none() -> None:
    task = _task()
    assert task.last_turn() is None
    assert task.last_turn("student") is None


def test_last_turn_any_role_and_by_role() -> None:
    task = _task(
        history=[
            {"role": "student", "content": "s1"},
            {"role": "teacher", "content": "t1"},
            {"role": "student", "content": "s2"},
            {"role": "extractor", "content": ""},
        ]
    )
    assert task.last_turn() == {"role": "extractor", "content": ""}
    student = task.last_turn("student")
    assert student is not None
    assert student["content"] == "s2"
    teacher = task.last_turn("teacher")
    assert teacher is not None
    assert teacher["content"] == "t1"
    assert task.last_turn("nobody") is None


def test_last_turn_returns_the_stored_dict() -> None:
    turn = {"role": "a", "content": "x"}
    task = _task(history=[turn])
    assert task.last_turn("a") is turn


def test_output_tokens_sums_completion_tokens_and_tolerates_missing_usage() -> None:
    task = _task(
        history=[
            {"role": "a", "usage": {"prompt_tokens": 100, "completion_tokens": 5}},
            {"role": "b"},  # a python step: no usage at all
            {"role": "a", "usage": {"prompt_tokens": 50}},  # no completion count
            {"role": "b", "usage": {"completion_tokens": 12}},
        ]
    )
    assert task.output_tokens() == 17
    assert _task().output_tokens() == 0


def test_finished_follows_next() -> None:
    assert _task().finished  # default next is END
    assert not _task(next="student").finished
    assert _task(next=END).finished


def test_to_record_has_every_field_with_the_right_values() -> None:
    history = [{"role": "a", "content": "hi"}]
    task = _task(
        attempt=2,
        hop=5,
        status="ok",
        history=history,
        state={"k": [1, 2]},
        error=None,
        created=10.0,
        updated=12.5,
    )
    rec = task.to_record()
    assert rec == {
        "id": "t-1",
        "attempt": 2,
        "seed": 7,
        "origin": "w0",
        "status": "ok",
        "error": None,
        "row": {"q": "why?"},
        "state": {"k": [1, 2]},
        "history": history,
        "hops": 5,
        "created": 10.0,
        "finished": 12.5,
        "ended": None,
    }
    # the routing marker is internal: it never reaches the output
    assert "next" not in rec


def test_mutable_defaults_are_not_shared() -> None:
    a, b = _task(), _task()
    a.history.append({"role": "x"})
    a.state["k"] = 1
    assert b.history == []
    assert b.state == {}


def test_start_from_copies_the_initial_state_under_what_admission_set() -> None:
    initial = {"notes": [], "trial": 9, "done": False}
    a = Task(id="r0-t1", seed=0, row={}, origin="w0", state={"trial": 1})
    b = Task(id="r1-t0", seed=0, row={}, origin="w0", state={"trial": 0})
    a.start_from(initial)
    b.start_from(initial)
    a.state["notes"].append("x")
    assert a.state == {"notes": ["x"], "trial": 1, "done": False}
    assert b.state == {"notes": [], "trial": 0, "done": False}
    assert initial["notes"] == []
