"""Steps of the code-reasoning workflow (configs/code.yaml)."""

from __future__ import annotations

from typing import Any

from matrixhpc.task import Task


def count_revision(task: Task) -> dict[str, Any]:
    """One more revision: the routing ends the task after three."""
    return {"revisions": int(task.state.get("revisions", 0)) + 1}
