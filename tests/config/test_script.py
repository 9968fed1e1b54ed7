"""services.<name>.simulated.script in a config: the shapes it accepts, and each mistake
named by its dotted key (checked with the roles); the same schema for a script file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixhpc.config import ConfigError, RunConfig, validate
from matrixhpc.config.script_file import load_script

ROOT = Path(__file__).resolve().parents[2]
KEY = "services.llm.simulated.script"


def _config(script: Any, **roles: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "configs" / "hello.yaml").read_text())
    data["roles"].update(roles)
    data["services"]["llm"]["simulated"] = {"script": script}
    return data


def _problems(script: Any, **roles: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        validate(_config(script, **roles))
    return info.value.problems


def test_every_shape_validates_and_a_bare_number_is_text() -> None:
    cfg: RunConfig = validate(
        _config(
            {
                "writer": {"template": "Draft: {{ last_user }}"},
                "editor": {"choice": [{"weight": 2.5, "reply": 4}, {"template": "{{ role }}"}]},
                "grader": {"reply": "VALID"},
            },
            grader={"kind": "custom", "class": "somewhere:Grader"},  # custom agents ask too
        )
    )
    script = cfg.services["llm"].simulated.script
    assert script["writer"].template == "Draft: {{ last_user }}"
    choice = script["editor"].choice
    assert choice is not None
    assert [(c.weight, c.reply, c.template) for c in choice] == [
        (2.5, "4", None),
        (1.0, None, "{{ role }}"),
    ]


@pytest.mark.parametrize(
    ("script", "key", "reason"),
    [
        ({"writr": {"reply": "x"}}, f"{KEY}.writr", "unknown role 'writr' (did you mean 'writer'"),
        ({"writer": {"reply": "x", "template": "y"}}, f"{KEY}.writer", "(got reply and template)"),
        ({"writer": {}}, f"{KEY}.writer", "exactly one of reply, template, choice (got none)"),
        ({"writer": {"choice": []}}, f"{KEY}.writer.choice", "at least 1 item"),
        ({"writer": {"choise": []}}, f"{KEY}.writer.choise", "unknown key (did you mean 'choice'"),
        ({"writer": {"reply": True}}, f"{KEY}.writer.reply", "valid string (got true)"),
        ({"writer": {"template": "{{ x "}}, f"{KEY}.writer.template", "does not compile"),
        ({"writer": {"template": "{{ row.a }}"}}, f"{KEY}.writer.template", "uses 'row'"),
        (
            {"writer": {"choice": [{"reply": "a"}, {"weight": 0, "reply": "b"}]}},
            f"{KEY}.writer.choice.1.weight",
            "greater than 0",
        ),
        (
            {"writer": {"choice": [{"template": "{% if %}"}]}},
            f"{KEY}.writer.choice.0.template",
            "does not compile",
        ),
        (
            {"writer": {"choice": [{"reply": "a", "choice": []}]}},
            f"{KEY}.writer.choice.0.choice",
            "unknown key",
        ),
    ],
)
def test_each_mistake_is_named_by_its_key(script: Any, key: str, reason: str) -> None:
    problems = dict(_problems(script))
    assert key in problems, problems
    assert reason in problems[key]


def test_a_role_that_never_asks_this_service_is_a_mistake() -> None:
    problems = _problems(
        {"step": {"reply": "x"}, "other": {"reply": "y"}},
        step={"kind": "python", "function": "m:f"},
        other={"kind": "llm", "service": "big", "prompt": "hi"},
    )
    assert (f"{KEY}.step", "role 'step' is a python step: it makes no LLM calls") in problems
    assert (f"{KEY}.other", "role 'other' calls service 'big', not 'llm'") in problems


def test_a_script_file_is_checked_by_the_same_schema(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("checker: {choice: [{weight: 3, reply: VALID}, {reply: INVALID}]}\n")
    assert load_script(good)["checker"]["choice"][0] == {
        "weight": 3.0,
        "reply": "VALID",
        "template": None,
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("checker: {template: '{{ state.x }}'}\n")
    with pytest.raises(ConfigError) as info:
        load_script(bad)
    assert [key for key, _ in info.value.problems] == ["script.checker.template"]
    with pytest.raises(ConfigError, match="cannot read a script"):
        load_script(tmp_path / "missing.yaml")
