"""Function routing for triage.yaml: the next role is whatever ``route`` returns."""

from __future__ import annotations

from typing import Any

from matrixhpc.task import Task


def route(task: Task) -> str | None:
    """Called before the first step (empty history) and after every step; a role name,
    or None to end the task."""
    if not task.history:
        return "classify"
    if task.history[-1]["role"] == "classify":
        return "expert" if task.state["hard"] else "tutor"
    return None


def classify(task: Task) -> dict[str, Any]:
    """A python step: what it returns is merged into ``task.state``."""
    return {"hard": task.row["subject"] in ("physics", "chemistry", "logic")}
