"""What an origin worker owns: its admitted tasks, the window, and writing each once."""

from __future__ import annotations

import asyncio
import random

from matrixhpc.data.writers import ShardWriter
from matrixhpc.task import Task


class OriginBook:
    def __init__(self, writer: ShardWriter, window: int) -> None:
        self.writer = writer
        self.window = asyncio.Semaphore(window)
        self.in_flight: dict[str, int] = {}  # id -> token
        self.written: set[str] = set()
        self.admitted = 0
        self.ok = 0
        self.failed = 0
        self.duplicates = 0

    async def admit(self, task: Task) -> None:
        await self.window.acquire()
        task.token = random.getrandbits(62) | 1
        self.in_flight[task.id] = task.token
        self.admitted += 1

    def complete(self, task: Task) -> bool:
        """Write a finished task's record once: dedup by id, and only the admitted copy
        (same token) counts, so a forged or stale return is dropped."""
        if task.id in self.written or self.in_flight.get(task.id) != task.token:
            self.duplicates += 1
            return False
        self.writer.write(task.to_record())
        self.written.add(task.id)
        del self.in_flight[task.id]
        self.window.release()
        if task.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
        return True
