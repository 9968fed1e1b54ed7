"""Names that can never exist: a state key nothing sets, a top-level name nothing
provides — whatever the data, in every branch of a template or condition."""

from __future__ import annotations

import pytest
from sample_workflow import Workflow, workflow_fixture  # noqa: F401  (the `workflow` fixture)

from matrixhpc.check.names import state_reads, syntax_tree
from matrixhpc.check.sources import Source


def _edge(workflow: Workflow, when: str) -> list[tuple[str, str]]:
    workflow.config["routing"]["edges"]["checker"][0]["when"] = when
    return workflow.problems()


def test_a_typo_in_a_state_key_of_a_condition(workflow: Workflow) -> None:
    assert _edge(workflow, "state.vaild") == [
        (
            "routing.edges.checker.0.when",
            "'state.vaild' is never set: it is not in the top-level state: and no role "
            "lists it in its sets: (did you mean 'valid'?)",
        )
    ]


@pytest.mark.parametrize(
    "when",
    [
        "not state.vaild",
        "state['vaild']",
        "state.get('vaild')",
        "task.state.vaild",
        "state.valid and state.vaild",  # short-circuited at run time: still a typo
        "(state.score or 0) > 3 and state.vaild is defined",
    ],
)
def test_every_way_of_reading_the_state_is_seen(workflow: Workflow, when: str) -> None:
    assert [reason[:19] for _, reason in _edge(workflow, when)] == ["'state.vaild' is ne"]


def test_a_key_of_the_initial_state_or_of_matrixhpc_exists(workflow: Workflow) -> None:
    workflow.config["state"] = {"attempts": 0}
    assert _edge(workflow, "state.attempts < 3 and state.trial == 0") == []


def test_a_key_a_role_declares_exists(workflow: Workflow) -> None:
    workflow.config["roles"]["checker"]["sets"] = ["valid", "feedback", "verdict"]
    assert _edge(workflow, "state.verdict == 'accept'") == []


def test_a_key_no_role_declares_is_reported_in_a_template_too(workflow: Workflow) -> None:
    workflow.config["roles"]["reviser"]["prompt"] = "{% if x %}{{ state.feedbak }}{% endif %}"
    problems = dict(workflow.problems())
    assert problems["roles.reviser.prompt"].startswith("'state.feedbak' is never set")
    assert problems["roles.reviser.prompt"].endswith("(did you mean 'feedback'?)")


def test_an_unknown_top_level_name(workflow: Workflow) -> None:
    assert _edge(workflow, "stat.valid") == [
        (
            "routing.edges.checker.0.when",
            "'stat' is undefined: a condition sees task, row, state, history, last "
            "(did you mean 'state'?)",
        )
    ]
    workflow.config["roles"]["writer"]["prompt"] = "{{ rwo.topic }}"
    assert dict(workflow.problems())["roles.writer.prompt"] == (
        "'rwo' is undefined: a template sees task, row, state, history, last, letters "
        "(did you mean 'row'?)"
    )


def test_names_a_template_defines_itself_are_known(workflow: Workflow) -> None:
    workflow.config["roles"]["writer"]["prompt"] = (
        "{% set n = row.level %}{% for o in range(n) %}{{ letters[o] }}{{ loop.index }}"
        "{% endfor %}{{ n }}"
    )
    assert workflow.problems() == []


def test_state_reads_are_constant_keys_only() -> None:
    source = Source(
        "k", "state[row.key] or state.items() or state.get('a') or state.b", "condition"
    )
    assert sorted(state_reads(syntax_tree(source))) == ["a", "b"]
