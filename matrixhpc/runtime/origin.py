"""What an origin worker owns: its admitted tasks, the window, leases, writing each once.

An admitted task carries a random token and an attempt number. The origin accepts
a finished task only if both match what it issued, so a forged return or a stale
attempt (one the origin re-issued after its lease expired) is dropped, and a
record is written exactly once (dedup by id).
"""

from __future__ import annotations

import asyncio
import random
import time

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


class OriginBook:
    def __init__(self, writer: ShardWriter, journal: Journal, window: int) -> None:
        self.writer = writer
        self.journal = journal
        self.window = Window(window)
        self.in_flight: dict[str, Admission] = {}
        self.written: set[str] = set()
        self.admitted = 0
        self.ok = 0
        self.failed = 0
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
        admission = Admission(task.token, task.attempt, task.row, time.time())
        self.in_flight[task.id] = admission
        self.journal.append(admit_record(task, admission.issued_at))

    def accepts(self, task: Task) -> bool:
        admission = self.in_flight.get(task.id)
        return admission is not None and (admission.token, admission.attempt) == (
            task.token,
            task.attempt,
        )

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
        self.window.release()
        if task.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        return True

    def expired(self, lease: float, now: float, held: set[str]) -> list[str]:
        """Tasks out longer than ``lease`` that this worker does not hold itself."""
        return [
            task_id
            for task_id, a in self.in_flight.items()
            if now - a.issued_at > lease and task_id not in held
        ]

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
