"""Jinja rendering of prompts over a task: the one place that defines what a template sees."""

from __future__ import annotations

from typing import Any

import jinja2

from matrixhpc.task import Task, Turn

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def template_environment(
    undefined: type[jinja2.Undefined] = jinja2.StrictUndefined,
) -> jinja2.Environment:
    """The environment prompts render in (``matrixhpc check`` probes with its own
    ``undefined``). StrictUndefined: a row missing a field the prompt uses is an error
    on that task (recorded in its turn), not a prompt silently rendered with a blank."""
    env = jinja2.Environment(undefined=undefined, keep_trailing_newline=False)
    env.globals["letters"] = LETTERS
    return env


_env = template_environment()


def compile_template(source: str) -> jinja2.Template:
    return _env.from_string(source)


def template_context(task: Task) -> dict[str, Any]:
    def last(role: str | None = None) -> Turn | dict[str, Any]:
        return task.last_turn(role) or {}

    return {
        "task": task,
        "row": task.row,
        "state": task.state,
        "history": task.history,
        "last": last,
    }
