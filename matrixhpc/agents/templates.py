"""Jinja rendering of prompts over a task: the one place that defines what a template sees."""

from __future__ import annotations

from typing import Any

import jinja2

from matrixhpc.task import Task, Turn

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

# StrictUndefined: a row missing a field the prompt uses is an error on that
# task (recorded in its turn), not a prompt silently rendered with a blank.
_env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
_env.globals["letters"] = LETTERS


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
