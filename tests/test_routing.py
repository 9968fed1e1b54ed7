"""Routers: sequential, graph and function. ``after`` sees hop already incremented and
``next`` still naming the role that just ran — the helper ``_step`` reproduces that."""

from __future__ import annotations

from typing import Any

import pytest

from matrixhpc.routing import (
    FunctionRouter,
    GraphRouter,
    Router,
    RoutingError,
    SequentialRouter,
    compile_condition,
    graph_edges,
)
from matrixhpc.task import END, Task, Turn


def _task(**kw: Any) -> Task:
    return Task(id="t", seed=0, row=kw.pop("row", {"n": 1}), origin="w0", **kw)


def _step(router: Router, task: Task, turn: Turn | None = None, **state: Any) -> str:
    """Run one step the way the worker does: append, hop += 1, then ask the router."""
    task.history.append(turn if turn is not None else {"role": task.next, "content": "ok"})
    task.state.update(state)
    task.hop += 1
    nxt = router.after(task)
    task.next = nxt
    return nxt


def _run(router: Router, task: Task, limit: int = 50) -> list[str]:
    task.next = router.first(task)
    visited: list[str] = []
    while task.next != END and len(visited) < limit:
        visited.append(task.next)
        _step(router, task)
    return visited


# ------------------------------------------------------------------ sequential


def test_sequential_once_visits_each_role_in_order() -> None:
    router = SequentialRouter(["a", "b", "c"])
    assert _run(router, _task()) == ["a", "b", "c"]


def test_sequential_repeat_cycles_until_max_steps() -> None:
    router = SequentialRouter(["a", "b"], repeat=True, max_steps=5)
    task = _task()
    assert _run(router, task) == ["a", "b", "a", "b", "a"]
    assert task.hop == 5


def test_max_steps_cuts_a_non_repeating_order() -> None:
    router = SequentialRouter(["a", "b", "c", "d"], max_steps=2)
    assert _run(router, _task()) == ["a", "b"]


def test_stop_when_on_state() -> None:
    router = SequentialRouter(
        ["s", "x", "m"], repeat=True, stop_when="state.agreed or state.turns >= 3"
    )
    task = _task()
    task.next = router.first(task)
    assert _step(router, task, turns=1, agreed=False) == "x"
    assert _step(router, task, turns=2) == "m"
    assert _step(router, task, agreed=True) == END


def test_stop_when_on_turn_count_alone() -> None:
    router = SequentialRouter(["a", "b"], repeat=True, stop_when="state.turns >= 3")
    task = _task()
    task.next = router.first(task)
    assert _step(router, task, turns=1) == "b"
    assert _step(router, task, turns=2) == "a"
    assert _step(router, task, turns=3) == END


def test_stop_when_sees_row_last_and_history() -> None:
    router = SequentialRouter(
        ["a", "b"], repeat=True, stop_when="last.content == row.stop_word or history | length >= 10"
    )
    task = _task(row={"stop_word": "DONE"})
    task.next = router.first(task)
    assert _step(router, task, {"role": "a", "content": "more"}) == "b"
    assert _step(router, task, {"role": "b", "content": "DONE"}) == END


@pytest.mark.parametrize(
    ("expr", "missing"),
    [
        ("state.turns >= 2", "state.turns"),
        ("state.agreed", "state.agreed"),
        ("state.agreed or state.turns >= 6", "state.agreed"),
        ("state.nested.deeper == 1", "state.nested"),
        ("row.missing > 3", "row.missing"),
        ("row.n.deeper", "(int object).deeper"),
        ("stat.agreed", "stat"),
    ],
)
def test_undefined_name_in_stop_when_is_an_error_naming_condition_and_name(
    expr: str, missing: str
) -> None:
    """Never a silent false: that ended tasks early, recorded ok."""
    router = SequentialRouter(["a", "b"], repeat=True, stop_when=expr)
    task = _task()
    task.next = router.first(task)
    with pytest.raises(RoutingError) as info:
        _step(router, task)
    assert str(info.value) == f"routing.stop_when {expr!r}: {missing!r} is undefined"


@pytest.mark.parametrize("expr", ["state.verdict != 'retry'", "not state.pending"])
def test_undefined_key_under_negation_is_an_error_not_true(expr: str) -> None:
    check = compile_condition(expr, "routing.edges.a.0.when")
    with pytest.raises(
        RoutingError, match=r"^routing\.edges\.a\.0\.when .*: 'state\.\w+' is undefined"
    ):
        check(_task())


def test_a_condition_that_raises_is_a_routing_error() -> None:
    check = compile_condition("state.turns >= 'six'", "routing.stop_when")
    t = _task()
    t.state["turns"] = 2
    with pytest.raises(RoutingError, match="TypeError: '>=' not supported"):
        check(t)


@pytest.mark.parametrize(
    "expr", ["state.x is defined", "state.x | default(0) > 1", "state.get('x')"]
)
def test_a_guarded_missing_key_is_no_error(expr: str) -> None:
    assert compile_condition(expr)(_task()) is False


def test_condition_is_evaluated_with_defined_values() -> None:
    check = compile_condition("state.verdict != 'retry'")
    t = _task()
    t.state["verdict"] = "retry"
    assert check(t) is False
    t.state["verdict"] = "accept"
    assert check(t) is True


def test_stop_on_error_ends_after_a_failed_turn() -> None:
    router = SequentialRouter(["a", "b", "c"])
    task = _task()
    task.next = router.first(task)
    assert _step(router, task, {"role": "a", "content": "", "error": "boom"}) == END


def test_error_none_is_not_a_failure() -> None:
    router = SequentialRouter(["a", "b"])
    task = _task()
    task.next = router.first(task)
    assert _step(router, task, {"role": "a", "content": "x", "error": None}) == "b"


def test_stop_on_error_disabled_keeps_going() -> None:
    router = SequentialRouter(["a", "b"], stop_on_error=False)
    task = _task()
    task.next = router.first(task)
    assert _step(router, task, {"role": "a", "content": "", "error": "boom"}) == "b"


def test_only_the_last_turn_counts_for_stop_on_error() -> None:
    router = SequentialRouter(["a", "b", "c"])
    task = _task()
    task.history.append({"role": "z", "error": "old failure"})
    task.next = router.first(task)
    assert _step(router, task, {"role": "a", "content": "fine"}) == "b"


# ------------------------------------------------------------------ graph


def _graph(**kw: Any) -> GraphRouter:
    edges = graph_edges(
        {
            "writer": "critic",
            "critic": [
                {"when": "state.score >= 8", "to": "END"},
                {"when": "state.score >= 5", "to": "editor"},
                {"to": "writer"},  # default edge
            ],
            "editor": "end",  # END in any case
        }
    )
    return GraphRouter("writer", edges, **kw)


def test_graph_first_is_start() -> None:
    assert _graph().first(_task()) == "writer"


@pytest.mark.parametrize(
    ("score", "expected"), [(9, END), (8, END), (6, "editor"), (5, "editor"), (2, "writer")]
)
def test_graph_conditional_edges_first_match_wins(score: int, expected: str) -> None:
    router = _graph()
    task = _task(next="critic")
    assert _step(router, task, score=score) == expected


def test_graph_fixed_edge_and_end_edge() -> None:
    router = _graph()
    task = _task(next="writer")
    assert _step(router, task) == "critic"
    task.next = "editor"
    assert _step(router, task) == END


def test_graph_full_path_with_loop() -> None:
    router = _graph()
    task = _task()
    task.next = router.first(task)
    assert _step(router, task) == "critic"
    assert _step(router, task, score=3) == "writer"
    assert _step(router, task) == "critic"
    assert _step(router, task, score=6) == "editor"
    assert _step(router, task) == END


def test_graph_undefined_condition_is_an_error_not_the_default_edge() -> None:
    router = _graph()
    task = _task(next="critic")  # no score: neither false nor true
    with pytest.raises(RoutingError, match=r"routing\.edges\.critic\.0\.when .*'state\.score'"):
        _step(router, task)


def test_graph_role_without_edges_ends() -> None:
    router = GraphRouter("a", graph_edges({"a": "b"}))
    task = _task(next="b")
    assert _step(router, task) == END


def test_graph_no_matching_edge_and_no_default_ends() -> None:
    router = GraphRouter("a", graph_edges({"a": [{"when": "state.go", "to": "b"}]}))
    task = _task(next="a")
    assert _step(router, task, go=False) == END
    task = _task(next="a")
    assert _step(router, task, go=True) == "b"


def test_graph_max_steps_and_stop_when() -> None:
    loop = graph_edges({"a": "b", "b": "a"})
    router = GraphRouter("a", loop, max_steps=3)
    assert _run(router, _task()) == ["a", "b", "a"]
    router = GraphRouter("a", loop, stop_when="state.halt")
    task = _task(next="a")
    assert _step(router, task, halt=False) == "b"
    assert _step(router, task, halt=True) == END


def test_graph_stop_on_error() -> None:
    router = GraphRouter("a", graph_edges({"a": "b"}))
    task = _task(next="a")
    assert _step(router, task, {"role": "a", "error": "x"}) == END


def test_graph_edges_compiles_when_and_defaults() -> None:
    edges = graph_edges({"a": "b", "c": [{"when": "state.x", "to": "d"}, {"to": "e"}]})
    assert edges["a"] == [(None, "b")]
    (cond, target), (default, other) = edges["c"]
    assert (target, default, other) == ("d", None, "e")
    assert cond is not None
    t = _task()
    t.state["x"] = 0
    assert cond(t) is False
    t.state["x"] = 1
    assert cond(t) is True


# ------------------------------------------------------------------ function


def test_function_router_uses_the_function_for_first_and_after() -> None:
    seen: list[tuple[str, int]] = []

    def fn(task: Task) -> str | None:
        seen.append((task.next, task.hop))
        return ["a", "b", "c"][task.hop] if task.hop < 3 else None

    router = FunctionRouter(fn)
    assert _run(router, _task()) == ["a", "b", "c"]
    # first sees hop 0; each after sees the role that just ran and the new hop
    assert seen == [(END, 0), ("a", 1), ("b", 2), ("c", 3)]


@pytest.mark.parametrize("end", [None, "END", "end", "End"])
def test_function_router_end_markers(end: str | None) -> None:
    router = FunctionRouter(lambda task: end)
    assert router.first(_task()) == END
    assert router.after(_task(next="a", hop=1)) == END


def test_function_router_stops_on_error_without_calling_fn() -> None:
    calls = []

    def fn(task: Task) -> str:
        calls.append(task.hop)
        return "a"

    router = FunctionRouter(fn)
    task = _task(next="a")
    assert _step(router, task, {"role": "a", "error": "bad"}) == END
    assert calls == []


def test_function_router_max_steps() -> None:
    router = FunctionRouter(lambda task: "again", max_steps=4)
    assert _run(router, _task()) == ["again"] * 4


def test_a_task_cut_off_by_max_steps_is_flagged_and_a_natural_end_is_not() -> None:
    looping = GraphRouter("a", graph_edges({"a": "b", "b": "a"}), max_steps=3)
    task = _task(next="a")
    assert [_step(looping, task) for _ in range(3)] == ["b", "a", END]
    assert task.ended == "max_steps"
    ending = GraphRouter("a", graph_edges({"a": "b", "b": "END"}), max_steps=2)
    task = _task(next="a")
    assert [_step(ending, task) for _ in range(2)] == ["b", END]
    assert task.ended is None  # ended where the graph ends, on its last allowed step
    order = SequentialRouter(["a", "b"], max_steps=2)
    task = _task(next="a")
    assert [_step(order, task) for _ in range(2)] == ["b", END]
    assert task.ended is None
    stopped = SequentialRouter(["a", "b"], repeat=True, stop_when="state.done", max_steps=2)
    task = _task(next="a")
    assert _step(stopped, task, done=False) == "b"
    assert _step(stopped, task, done=True) == END
    assert task.ended is None  # stop_when concluded it
