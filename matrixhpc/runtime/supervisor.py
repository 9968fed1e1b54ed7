"""Supervision of a worker's background loops and per-task jobs.

Liveness depends on every loop staying alive (the ACK watcher, the inbox, leases);
a coroutine that dies silently strands tasks. Every job started here has its failure
logged, and the first unexpected failure is recorded as the worker's fault: the worker
then stops with the resumable exit code and the reason, never silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self) -> None:
        self.jobs: set[asyncio.Task[Any]] = set()
        self.fault: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def start(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background under supervision."""
        job = asyncio.create_task(coro, name=name)
        self.jobs.add(job)
        job.add_done_callback(self._finished)
        return job

    def fail(self, reason: str) -> None:
        """Record the worker's fault (the first one wins): the worker stops resumably."""
        if not self.fault.done():
            log.error("worker stopping (resumable): %s", reason)
            self.fault.set_result(reason)

    def _finished(self, job: asyncio.Task[Any]) -> None:
        self.jobs.discard(job)
        if job.cancelled():
            return
        exc = job.exception()
        if exc is not None:
            log.error("%s failed", job.get_name(), exc_info=exc)
            self.fail(f"{job.get_name()}: {type(exc).__name__}: {exc}")

    async def cancel_all(self) -> None:
        """Cancel every job and wait for them (shutdown)."""
        jobs = list(self.jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
