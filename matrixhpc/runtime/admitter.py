"""The worker as an origin: admits its slice, starts and re-issues its own tasks,
writes each finished one once, and knows when all of them are written.

The bookkeeping (window, tokens, attempts, dedup) is
:class:`~matrixhpc.runtime.origin.OriginBook`'s; this is where it meets the rest of
the worker: a task admitted here is journaled and handed to the stepping side, and
its admission must be durable before any copy of it leaves this worker (a copy of
an admission the origin forgot in a crash could never be written).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from matrixhpc.data.readers import RowError
from matrixhpc.data.writers import ErrorLog
from matrixhpc.routing import Router
from matrixhpc.runtime.admission import slice_items, task_seed
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.recovery import task_record
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.task import Task

log = logging.getLogger(__name__)

# start driving a task, as a supervised job of the given name
Drive = Callable[[Task, str], None]


class Admitter:
    def __init__(
        self,
        spec: WorkerSpec,
        book: OriginBook,
        journal: Journal,
        router: Router,
        holdings: Holdings,
        errors: ErrorLog,
        stats: WorkerStats,
        drive: Drive,
    ) -> None:
        self.spec = spec
        self.book = book
        self.journal = journal
        self.router = router
        self.holdings = holdings
        self.errors = errors
        self.stats = stats
        self.drive = drive
        self.admission_done = False
        self.done = asyncio.Event()  # every task admitted here is written
        # admitted here, admission not yet known durable: a copy must not leave before it is
        self._unsaved: set[str] = set()

    async def admit_all(self) -> None:
        """Admit every task of this worker's slice that it has not admitted before
        (within the window), and record its bad rows once."""
        spec = self.spec
        items = slice_items(
            spec.dataset_path,
            limit=spec.dataset_limit,
            shard=(spec.index, spec.count),
            required=list(spec.required),
            trials=spec.trials,
            origin=spec.name,
            run_seed=spec.seed,
        )
        resumed = bool(self.book.written or self.book.in_flight)
        for item in items:
            if isinstance(item, RowError):
                if not resumed or not self.errors.path.exists():
                    self.errors.write(item.to_record())
                self.stats.row_errors += 1
            elif not self.book.known(item.id):
                await self.book.admit(item)
                self.start(item)
        self.admission_done = True
        self.check_done()

    def start(self, task: Task) -> None:
        """A newly admitted (or re-issued) task: journal it and start stepping it here.

        It starts from the config's initial ``state:`` (a copy: tasks never share it),
        under what admission set (``trial``), before the router or any step sees it."""
        task.start_from(self.spec.initial_state)
        task.next = self.router.first(task)
        self.holdings.take(task)
        self._unsaved.add(task.id)
        self.journal.append(task_record(task))
        self.drive(task, "task")

    def reissue(self, task_id: str) -> None:
        """A task whose lease expired: a new attempt, or a failed record after the last."""
        attempts = self.book.attempts(task_id)
        if attempts >= self.spec.max_attempts:
            reason = f"no attempt came back: gave up after {attempts} leases expired"
            log.error("task %s: %s", task_id, reason)
            self.book.give_up(task_id, self.spec.name, reason)
            self.check_done()
            return
        task = self.book.reissue(task_id, task_seed(self.spec.seed, task_id), self.spec.name)
        log.warning("lease expired: re-issuing %s as attempt %d", task_id, task.attempt)
        self.start(task)

    async def before_leaving(self, task: Task) -> None:
        """Make the admission of ``task`` durable before a copy of it leaves this worker."""
        if task.id in self._unsaved:
            await self.journal.commit()
            self._unsaved.discard(task.id)

    def complete(self, task: Task) -> None:
        """One of this origin's tasks finished here: write it (once)."""
        self._unsaved.discard(task.id)
        self.book.complete(task)
        self.holdings.release(task)
        self.check_done()

    def take_return(self, task: Task) -> None:
        """One of this origin's tasks finished elsewhere: write it once; a copy still
        held here (a later attempt) is then surplus."""
        if self.book.complete(task):
            self.holdings.forget(task.id)
            self.check_done()

    def stale_here(self, task: Task) -> bool:
        """One of this origin's own tasks that it can never write: already written, or of
        an admission it does not know (issued by an incarnation whose journal was lost)."""
        return task.origin == self.spec.name and not self.book.accepts(task)

    def check_done(self) -> None:
        if self.admission_done and not self.book.in_flight:
            self.done.set()
