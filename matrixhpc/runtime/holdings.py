"""What a worker is responsible for: the tasks it holds and the hand-offs it has taken.

Shared by every part of the worker (stepping, dispatch, the inbound protocol, leases,
the liveness audit, the journal snapshot), so the rule for which copy of a task is
current (:mod:`copies`) is applied in one place.
"""

from __future__ import annotations

from matrixhpc.runtime.copies import still_current, supersedes
from matrixhpc.runtime.recovery import Key
from matrixhpc.task import Task


class Holdings:
    def __init__(self, tasks: dict[str, Task] | None = None, seen: set[Key] | None = None) -> None:
        self.tasks: dict[str, Task] = tasks if tasks is not None else {}  # one copy per id
        self.seen: set[Key] = seen if seen is not None else set()  # hand-offs taken (dedup)

    def __len__(self) -> int:
        return len(self.tasks)

    def take(self, task: Task) -> None:
        """Hold ``task`` (replacing any copy held for its id)."""
        self.tasks[task.id] = task

    def holds(self, task: Task) -> bool:
        """Whether ``task`` is still worth driving here (:mod:`copies`)."""
        return still_current(self.tasks.get(task.id), task)

    def surplus(self, task: Task) -> bool:
        """Whether an arriving ``task`` adds nothing to the copy held for its id."""
        return supersedes(self.tasks.get(task.id), task)

    def release(self, task: Task) -> None:
        """Stop holding ``task`` (this very copy: a newer one stays)."""
        if self.tasks.get(task.id) is task:
            del self.tasks[task.id]

    def forget(self, task_id: str) -> None:
        """Stop holding whichever copy of ``task_id`` is held."""
        self.tasks.pop(task_id, None)

    def foreign(self, me: str) -> list[Task]:
        """The tasks held here for other origins."""
        return [task for task in self.tasks.values() if task.origin != me]
