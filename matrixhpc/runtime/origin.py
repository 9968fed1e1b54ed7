"""What an origin worker owns: its admitted tasks, the window, leases, writing each once.

An admitted task carries a random token and an attempt number. The origin accepts
a finished task only with its token and an attempt it issued, so a forged return is
dropped; the first attempt to finish is written (a slow copy that finally arrives is
work done, not waste) and every later one is a duplicate: a record is written exactly
once (dedup by id).

Leases: a task out of the origin's hands is re-issued (attempt + 1) when nobody has
reported it moving for a lease. Workers holding a task renew its lease while they
drive it (:meth:`OriginBook.renew`), so only tasks on a stopped or lost worker are
re-issued; each attempt waits twice as long as the one before, and after
``max_attempts`` the task is given up and recorded failed with the reason, so a run
can neither storm nor wait forever.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Collection

from matrixhpc.data.writers import ShardRecovery, ShardWriter
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.recovery import Admission, admit_record, done_record
from matrixhpc.task import Task


class Window:
    """At most ``size`` tasks in flight; after a restart it may start over-full (the
    journal holds more than a shrunk window), and then admits nothing until it drains."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.used < self.size)
            self.used += 1

    def take(self, n: int) -> None:
        self.used += n

    def release(self) -> None:
        self.used -= 1
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify()


MAX_BACKOFF = 16  # the lease of a late attempt is at most this many base leases


class OriginBook:
    def __init__(
        self,
        writer: ShardWriter,
        journal: Journal,
        window: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.journal = journal
        self.window = Window(window)
        self.clock = clock
        self.in_flight: dict[str, Admission] = {}
        self.heard: dict[str, float] = {}  # when each task out was last issued or renewed
        self.written: set[str] = set()
        self.admitted = 0
        self.ok = 0
        self.failed = 0
        self.written_here = 0  # records this process wrote (not restored ones) ...
        self.turns_written = 0  # ... and their turns: how long a task takes, for the ETA
        self.duplicates = 0
        self.stale = 0
        self.reissued = 0

    def restore(self, admitted: dict[str, Admission], shards: ShardRecovery) -> None:
        """After a restart: what was written (from the shards) and what is still out."""
        self.written = set(shards.ids)
        self.ok, self.failed = shards.count("ok"), shards.count("failed")
        for task_id, admission in admitted.items():
            if task_id not in self.written:
                self.in_flight[task_id] = admission
        self.hear_all()  # a restarted origin gives every task out a full lease again
        self.window.take(len(self.in_flight))
        self.admitted = len(self.written) + len(self.in_flight)

    def known(self, task_id: str) -> bool:
        return task_id in self.in_flight or task_id in self.written

    async def admit(self, task: Task) -> None:
        await self.window.acquire()
        task.token = random.getrandbits(62) | 1
        self._issue(task)
        self.admitted += 1

    def _issue(self, task: Task) -> None:
        admission = Admission(task.token, task.attempt, task.row, self.clock())
        self.in_flight[task.id] = admission
        self.heard[task.id] = admission.issued_at
        self.journal.append(admit_record(task, admission.issued_at))

    def accepts(self, task: Task) -> bool:
        return self._issued(task.id, task.token, task.attempt)

    def _issued(self, task_id: str, token: int, attempt: int) -> bool:
        admission = self.in_flight.get(task_id)
        return admission is not None and admission.token == token and attempt <= admission.attempt

    def hear_all(self) -> None:
        """Start every lease over (after a restart, or a pause of this process: reports
        sent meanwhile may not have been read yet)."""
        now = self.clock()
        self.heard = dict.fromkeys(self.in_flight, now)

    def renew(self, task_id: str, token: int, attempt: int) -> bool:
        """A worker reports this attempt moving: its lease starts over."""
        if not self._issued(task_id, token, attempt):
            return False
        self.heard[task_id] = self.clock()
        return True

    def complete(self, task: Task) -> bool:
        """Write a finished task's record once; a duplicate, forged or stale one is dropped."""
        if task.id in self.written:
            self.duplicates += 1
            return False
        if not self.accepts(task):
            self.stale += 1
            return False
        self.writer.write(task.to_record())
        self.journal.append(done_record(task.id))
        self.written.add(task.id)
        del self.in_flight[task.id]
        self.heard.pop(task.id, None)
        self.window.release()
        self.written_here += 1
        self.turns_written += len(task.history)
        if task.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        return True

    def expired(self, lease: float, held: Collection[str]) -> list[str]:
        """Tasks nobody has reported moving for their lease (``lease`` doubled per
        attempt) that this worker does not hold itself."""
        now = self.clock()
        return [
            task_id
            for task_id, a in self.in_flight.items()
            if task_id not in held
            and now - self.heard.get(task_id, a.issued_at) > lease * min(2**a.attempt, MAX_BACKOFF)
        ]

    def attempts(self, task_id: str) -> int:
        """How many attempts of a task have been issued."""
        return self.in_flight[task_id].attempt + 1

    def give_up(self, task_id: str, origin: str, reason: str) -> Task:
        """A task no attempt of which came back: its final record, failed with ``reason``."""
        old = self.in_flight[task_id]
        task = Task(task_id, 0, old.row, origin, attempt=old.attempt, token=old.token)
        task.state["trial"] = trial_of(task_id)
        task.status, task.error = "failed", reason
        self.complete(task)
        return task

    def reissue(self, task_id: str, seed: int, origin: str) -> Task:
        """A new attempt of a task whose lease expired; the old attempt becomes stale."""
        old = self.in_flight[task_id]
        task = Task(id=task_id, seed=seed, row=old.row, origin=origin, attempt=old.attempt + 1)
        task.state["trial"] = trial_of(task_id)
        task.token = old.token
        self._issue(task)
        self.reissued += 1
        return task


def task_id(row: int, trial: int) -> str:
    return f"r{row}-t{trial}"


def trial_of(task_id: str) -> int:
    """The trial number in an id made by :func:`task_id` (0 for any other id)."""
    _, sep, trial = task_id.rpartition("-t")
    return int(trial) if sep and trial.isdigit() else 0
