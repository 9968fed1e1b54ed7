"""What an origin worker owns: its admitted tasks, the window, and writing each once."""

from __future__ import annotations

import asyncio

from matrixhpc.data.writers import ShardWriter
from matrixhpc.task import Task


class OriginBook:
    def __init__(self, writer: ShardWriter, window: int) -> None:
        self.writer = writer
        self.window = asyncio.Semaphore(window)
        self.in_flight: set[str] = set()
        self.written: set[str] = set()
        self.admitted = 0
        self.ok = 0
        self.failed = 0
        self.duplicates = 0

    async def admit(self, task: Task) -> None:
        await self.window.acquire()
        self.in_flight.add(task.id)
        self.admitted += 1

    def complete(self, task: Task) -> bool:
        """Write a finished task's record unless it was written already (dedup by id)."""
        if task.id in self.written or task.id not in self.in_flight:
            self.duplicates += 1
            return False
        self.writer.write(task.to_record())
        self.written.add(task.id)
        self.in_flight.discard(task.id)
        self.window.release()
        if task.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        return True
