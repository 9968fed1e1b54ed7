"""User code: each ``function:`` and ``class:`` imports from the config's directory (and
``python_path``) and fits its role — else one line naming the role's key, the reason and,
for a typo, the name meant."""

from __future__ import annotations

from pathlib import Path

import pytest
from sample_workflow import Workflow, workflow_fixture  # noqa: F401  (the `workflow` fixture)


def _only(workflow: Workflow, key: str) -> str:
    problems = workflow.problems()
    assert [k for k, _ in problems] == [key], problems
    return problems[0][1]


def test_a_module_that_does_not_exist(workflow: Workflow) -> None:
    workflow.config["roles"]["checker"]["function"] = "stpes:judge"
    reason = _only(workflow, "roles.checker.function")
    assert reason == (
        f"cannot import 'stpes:judge': no module named 'stpes' "
        f"(searched python_path: {workflow.dir}, then installed packages)"
    )


def test_a_module_that_fails_to_import_names_its_line(workflow: Workflow) -> None:
    (workflow.dir / "broken_steps_q1.py").write_text("import os\nraise RuntimeError('no GPU')\n")
    workflow.config["roles"]["checker"]["function"] = "broken_steps_q1:judge"
    reason = _only(workflow, "roles.checker.function")
    assert reason == (
        "cannot import 'broken_steps_q1:judge': importing 'broken_steps_q1' failed: "
        "RuntimeError: no GPU (broken_steps_q1.py, line 2)"
    )


def test_a_missing_attribute_with_a_did_you_mean(workflow: Workflow) -> None:
    workflow.config["roles"]["checker"]["function"] = workflow.code("jugde")
    reason = _only(workflow, "roles.checker.function")
    assert reason.endswith(f"{workflow.module!r} has no attribute 'jugde' (did you mean 'judge'?)")


def test_a_class_that_is_not_an_agent(workflow: Workflow) -> None:
    workflow.config["roles"]["scorer"]["class"] = workflow.code("NotAnAgent")
    reason = _only(workflow, "roles.scorer.class")
    assert reason.startswith(f"{workflow.code('NotAnAgent')!r} is not an Agent subclass")


def test_a_function_given_as_a_class(workflow: Workflow) -> None:
    workflow.config["roles"]["scorer"]["class"] = workflow.code("judge")
    assert "is not an Agent subclass (it is function)" in _only(workflow, "roles.scorer.class")


def test_an_agent_without_its_call(workflow: Workflow) -> None:
    workflow.config["roles"]["scorer"]["class"] = workflow.code("Unfinished")
    reason = _only(workflow, "roles.scorer.class")
    assert reason == (
        f"{workflow.code('Unfinished')!r} does not implement __call__: "
        "async def __call__(self, task, ctx)"
    )


@pytest.mark.parametrize(
    ("attribute", "reason"),
    [
        ("three_arguments", "(task, options, extra) cannot be called as fn(task, options)"),
        ("NOT_A_FUNCTION", "is not a function (it is int)"),
    ],
)
def test_a_python_step_that_cannot_be_called_as_one(
    workflow: Workflow, attribute: str, reason: str
) -> None:
    workflow.config["roles"]["checker"]["function"] = workflow.code(attribute)
    assert reason in _only(workflow, "roles.checker.function")


def test_a_step_taking_options_is_fine(workflow: Workflow) -> None:
    workflow.config["roles"]["checker"]["function"] = workflow.code("with_options")
    assert workflow.problems() == []


def test_a_routing_function(workflow: Workflow) -> None:
    workflow.config["routing"] = {"kind": "function", "function": workflow.code("route")}
    assert workflow.problems() == []
    workflow.config["routing"]["function"] = workflow.code("with_options")
    reason = _only(workflow, "routing.function")
    assert "cannot be called as fn(task): missing a required argument: 'options'" in reason


def test_code_comes_from_python_path_relative_to_the_config(
    workflow: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = tmp_path / "shared"
    lib.mkdir()
    (lib / "shared_steps_q2.py").write_text("def judge(task):\n    return {'valid': True}\n")
    workflow.config["roles"]["checker"]["function"] = "shared_steps_q2:judge"
    monkeypatch.chdir(lib)  # found here by accident: the current directory is not searched
    assert [k for k, _ in workflow.problems()] == ["roles.checker.function"]
    workflow.config["python_path"] = ["../shared"]
    assert workflow.problems() == []
