"""A user's workflow in a directory of its own, as the issue's new user wrote it: a writer,
a python checker, a reviser loop, a custom scorer; its own module beside the config.

Each test breaks one thing (``Workflow.config`` is a plain dict) and checks what
``matrixhpc check`` says. The module gets a name of its own per test, because an
imported module stays in ``sys.modules`` for the rest of the session.
"""

from __future__ import annotations

import copy
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixhpc.check import Report, check_config
from matrixhpc.config import load_config

STEPS = '''
from matrixhpc.agents import Agent


def judge(task):
    """The checker: good enough once revised (so that a dry run takes both edges)."""
    revised = any(turn.get("role") == "reviser" for turn in task.history)
    return {"valid": revised, "feedback": "" if revised else "shorter, please"}


def with_options(task, options):
    return {}


def three_arguments(task, options, extra):
    return {}


def route(task):
    return "writer" if task.hop == 0 else None


NOT_A_FUNCTION = 3


class Scorer(Agent):
    async def __call__(self, task, ctx):
        task.state["score"] = len(task.history)
        return {"role": self.name, "content": ""}


class NotAnAgent:
    pass


class Unfinished(Agent):
    pass
'''

ROWS = [
    {"topic": "why the sky is blue", "level": 1},
    {"topic": "how bread rises", "level": 2},
    {"topic": "how a bicycle stays upright", "level": 3, "hint": "gyroscope"},
]

CONFIG: dict[str, Any] = {
    "services": {"llm": {"engine": "simulated"}},
    "roles": {
        "writer": {
            "service": "llm",
            "system": "You write for level {{ row.level }} readers.",
            "prompt": "Explain {{ row.topic }}."
            "{% if row.hint is defined %} ({{ row.hint }}){% endif %}",
        },
        "checker": {"kind": "python", "function": "STEPS:judge", "sets": ["valid", "feedback"]},
        "reviser": {
            "service": "llm",
            "prompt": "{{ last('writer').content }}\nRevise it: {{ state.feedback }}",
        },
        "scorer": {"kind": "custom", "class": "STEPS:Scorer", "sets": ["score"]},
    },
    "routing": {
        "kind": "graph",
        "start": "writer",
        "edges": {
            "writer": "checker",
            "checker": [{"when": "state.valid", "to": "scorer"}, {"to": "reviser"}],
            "reviser": "checker",
            "scorer": "END",
        },
        "max_steps": 12,
    },
    "dataset": {"path": "rows.jsonl", "required": ["topic"]},
    "workers": {"count": 1},
}


class Workflow:
    """The sample workflow in ``directory``: ``config`` to edit, ``write`` to save it."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.module = f"steps_{uuid.uuid4().hex[:10]}"
        (self.dir / f"{self.module}.py").write_text(STEPS)
        (self.dir / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        self.config: dict[str, Any] = json.loads(
            json.dumps(CONFIG).replace("STEPS:", f"{self.module}:")
        )

    @property
    def path(self) -> Path:
        return self.dir / "workflow.yaml"

    def write(self) -> Path:
        self.path.write_text(yaml.safe_dump(copy.deepcopy(self.config), sort_keys=False))
        return self.path

    def code(self, attribute: str) -> str:
        return f"{self.module}:{attribute}"

    def check(self, *overrides: str) -> Report:
        return check_config(load_config(self.write(), list(overrides)))

    def problems(self, *overrides: str) -> list[tuple[str, str]]:
        return self.check(*overrides).problems


@pytest.fixture(name="workflow")
def workflow_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workflow:
    """The sample workflow in ``tmp_path/wf``; ``sys.path`` (which the check changes) is
    put back afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    return Workflow(tmp_path / "wf")
