"""Templates rendered, and conditions evaluated, on the first rows of the dataset: a row
field that is not there is reported with the row's fields; the first role's view of a
task's first step is exact; other roles' views of state and history are not judged."""

from __future__ import annotations

import json

from sample_workflow import Workflow, workflow_fixture  # noqa: F401  (the `workflow` fixture)


def _prompt(workflow: Workflow, role: str, text: str) -> list[tuple[str, str]]:
    workflow.config["roles"][role]["prompt"] = text
    return workflow.problems()


def test_a_row_field_the_dataset_lacks_with_a_did_you_mean(workflow: Workflow) -> None:
    """The issue's case: every task used to fail with UndefinedError, and the run exit 0."""
    assert _prompt(workflow, "writer", "Explain {{ row.topik }} at {{ row.levl }}.") == [
        (
            "roles.writer.prompt",
            "'row.topik' is undefined; row fields: level, topic (did you mean 'topic'?)",
        ),
        (
            "roles.writer.prompt",
            "'row.levl' is undefined; row fields: level, topic (did you mean 'level'?)",
        ),
    ]


def test_in_any_role_and_any_use(workflow: Workflow) -> None:
    problems = _prompt(workflow, "reviser", "{% for x in row.steps %}{{ x }}{% endfor %}")
    assert problems == [
        ("roles.reviser.prompt", "'row.steps' is undefined; row fields: level, topic")
    ]
    problems = _prompt(workflow, "reviser", "{{ row.level + row.bonus }}")
    assert [reason[:17] for _, reason in problems] == ["'row.bonus' is un"]


def test_a_field_only_some_rows_lack_says_which(workflow: Workflow) -> None:
    problems = _prompt(workflow, "writer", "{{ row.topic }}: {{ row.hint }}")
    assert problems == [
        (
            "roles.writer.prompt",
            "'row.hint' is undefined on rows.jsonl line 1, 2; row fields: level, topic",
        )
    ]


def test_a_guarded_field_is_fine(workflow: Workflow) -> None:
    assert _prompt(workflow, "writer", "{{ row.hint | default('none') }}") == []


def test_a_nested_field(workflow: Workflow) -> None:
    rows = [{"topic": "t", "meta": {"source": "wiki"}}]
    (workflow.dir / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    workflow.config["roles"]["writer"]["system"] = "from {{ row.meta.sorce }}"
    assert _prompt(workflow, "writer", "{{ row.topic }}") == [
        (
            "roles.writer.system",
            "'row.meta.sorce' is undefined; fields of row.meta: source (did you mean 'source'?)",
        )
    ]


def test_a_row_field_in_a_condition(workflow: Workflow) -> None:
    workflow.config["routing"]["edges"]["checker"][0]["when"] = "state.valid or row.levle > 2"
    assert dict(workflow.problems())["routing.edges.checker.0.when"] == (
        "'row.levle' is undefined; row fields: level, topic (did you mean 'level'?)"
    )


def test_the_first_role_at_the_first_step_has_no_state_set_by_others(workflow: Workflow) -> None:
    problems = _prompt(workflow, "writer", "{{ row.topic }} {{ state.feedback }}")
    assert problems == [
        (
            "roles.writer.prompt",
            "'state.feedback' is undefined at the task's first step: roles.writer runs first, "
            "before any role sets it (give it an initial value in the top-level state:)",
        )
    ]
    workflow.config["state"] = {"feedback": ""}
    assert workflow.problems() == []


def test_the_first_role_at_the_first_step_has_no_turns(workflow: Workflow) -> None:
    problems = _prompt(workflow, "writer", "Improve: {{ last('reviser').content }}")
    assert problems == [
        (
            "roles.writer.prompt",
            "fails at the task's first step (no turns yet): 'dict object' has no attribute "
            "'content'",
        )
    ]


def test_later_roles_may_use_what_earlier_steps_leave(workflow: Workflow) -> None:
    """The reviser runs after the checker set feedback and the writer spoke."""
    text = "{{ last('writer').content }} {{ history[-1].content }} {{ state.feedback | upper }}"
    assert _prompt(workflow, "reviser", text) == []


def test_the_first_role_failing_otherwise_on_a_row(workflow: Workflow) -> None:
    problems = _prompt(workflow, "writer", "{{ row.topic }} {{ 10 // (row.level - 1) }}")
    assert problems == [
        (
            "roles.writer.prompt",
            "fails at the task's first step on rows.jsonl line 1: ZeroDivisionError: "
            "integer division or modulo by zero",
        )
    ]


def test_a_dataset_whose_first_rows_are_all_bad(workflow: Workflow) -> None:
    """``required: [topik]``: every row would go to _errors.jsonl and the run write nothing."""
    workflow.config["dataset"]["required"] = ["topik"]
    problems = workflow.problems()
    assert [k for k, _ in problems] == ["dataset"]
    assert problems[0][1].startswith("none of the first 3 rows is valid: missing required field")
