"""The routing graph: every role runs, no edge is dead, every task can end."""

from __future__ import annotations

import pytest
from sample_workflow import Workflow, workflow_fixture  # noqa: F401  (the `workflow` fixture)


def _edges(workflow: Workflow, **edges: object) -> list[tuple[str, str]]:
    workflow.config["routing"]["edges"] = edges
    return workflow.problems()


def test_a_role_no_edge_leads_to(workflow: Workflow) -> None:
    problems = _edges(workflow, writer="checker", checker=[{"when": "state.valid", "to": "END"}])
    assert problems == [
        ("roles.reviser", "never runs: no edge from routing.start 'writer' leads to it"),
        ("roles.scorer", "never runs: no edge from routing.start 'writer' leads to it"),
    ]


def test_an_edge_after_one_without_a_condition(workflow: Workflow) -> None:
    checker = [{"to": "reviser"}, {"when": "state.valid", "to": "scorer"}]
    problems = _edges(workflow, writer="checker", checker=checker, reviser="checker")
    assert (
        "routing.edges.checker.1",
        "never taken: edge 0 has no condition and always matches first",
    ) in problems


def test_a_loop_with_no_way_out(workflow: Workflow) -> None:
    checker = [{"when": "state.valid", "to": "scorer"}, {"to": "reviser"}]
    problems = _edges(
        workflow, writer="checker", checker=checker, reviser="checker", scorer="writer"
    )
    assert problems == [
        (
            "routing.edges.writer",
            "no path from writer, checker, reviser, scorer ever reaches END: their edges lead "
            "only among them; add an edge to END (with a when:) or a routing.stop_when, else "
            "every task runs until routing.max_steps (12)",
        )
    ]


def test_a_stop_when_or_a_conditional_last_edge_can_end_a_loop(workflow: Workflow) -> None:
    loop = {
        "writer": "checker",
        "checker": [{"when": "state.valid", "to": "scorer"}, {"to": "reviser"}],
        "reviser": "checker",
        "scorer": "writer",
    }
    workflow.config["routing"]["stop_when"] = "state.score > 3"
    assert _edges(workflow, **loop) == []
    del workflow.config["routing"]["stop_when"]
    loop["checker"] = [
        {"when": "state.valid", "to": "scorer"},
        {"when": "not state.valid", "to": "reviser"},
    ]
    assert _edges(workflow, **loop) == []  # neither condition true: the task ends


def test_edges_to_an_unknown_role_are_a_config_error(workflow: Workflow) -> None:
    """The issue's first guess at the shape is a config error too, naming the keys."""
    from matrixhpc.config import ConfigError, load_config

    workflow.config["routing"]["edges"]["reviser"] = "chekcer"
    with pytest.raises(ConfigError) as info:
        load_config(workflow.write())
    assert info.value.problems == [
        ("routing.edges.reviser", "no role named 'chekcer' (did you mean 'checker'?)")
    ]


def test_a_sequential_order_that_leaves_a_role_out(workflow: Workflow) -> None:
    workflow.config["routing"] = {"kind": "sequential", "order": ["writer", "checker", "reviser"]}
    assert workflow.problems() == [("roles.scorer", "never runs: routing.order does not name it")]


def test_a_repeating_order_nothing_stops(workflow: Workflow) -> None:
    order = ["writer", "checker", "reviser", "scorer"]
    workflow.config["routing"] = {"kind": "sequential", "order": order, "repeat": True}
    assert workflow.problems() == [
        (
            "routing.repeat",
            "the order repeats and no routing.stop_when ends it: every task runs until "
            "routing.max_steps (100)",
        )
    ]
    workflow.config["routing"]["stop_when"] = "state.valid"
    assert workflow.problems() == []
