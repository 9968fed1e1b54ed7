"""The liveness invariant, checked: every task a worker holds is driven by something.

A held task is driven while a coroutine steps or dispatches it (tracked here), or
while it waits for an ACK in the hand-off table (a resend timer drives it). A task
held with neither is stranded; the audit finds it, reports it loudly and hands it back
to the worker to be driven again. A task must be seen undriven by two audits in a row
before it counts (between two awaits a task may be in neither place for a moment).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from contextlib import contextmanager

from matrixhpc.task import Task

log = logging.getLogger(__name__)

AUDIT_INTERVAL = 5.0  # seconds between liveness audits


class Liveness:
    def __init__(self) -> None:
        self.driving: Counter[str] = Counter()
        self.redriven = 0
        self._suspects: dict[str, tuple[int, int]] = {}

    @contextmanager
    def drive(self, task_id: str) -> Iterator[None]:
        """Mark ``task_id`` as driven for the duration of the block."""
        self.driving[task_id] += 1
        try:
            yield
        finally:
            self.driving[task_id] -= 1
            if self.driving[task_id] <= 0:
                del self.driving[task_id]

    def audit(self, held: Mapping[str, Task], pending: Collection[str]) -> list[Task]:
        """Held tasks nobody has driven since the previous audit: re-drive these."""
        suspects: dict[str, tuple[int, int]] = {}
        stranded: list[Task] = []
        for task_id, task in held.items():
            if task_id in self.driving or task_id in pending:
                continue
            mark = (id(task), task.hop)
            if self._suspects.get(task_id) == mark:
                stranded.append(task)
            else:
                suspects[task_id] = mark
        self._suspects = suspects
        if stranded:
            self.redriven += len(stranded)
            log.error(
                "liveness audit: %d held task(s) driven by nothing, re-driving: %s",
                len(stranded),
                ", ".join(t.id for t in stranded[:10]),
            )
        return stranded

    async def patrol(
        self,
        held: Mapping[str, Task],
        pending: Collection[str],
        redrive: Callable[[Task], None],
        sleep: Callable[[float], Awaitable[None]],
        interval: float = AUDIT_INTERVAL,
    ) -> None:
        """Audit ``held`` every ``interval`` (forever) and hand back what nothing drives.
        ``held`` and ``pending`` are the worker's live collections, read at each audit."""
        while True:
            await sleep(interval)
            for task in self.audit(held, pending):
                redrive(task)
