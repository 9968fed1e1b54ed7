"""Time as the runtime sees it: wall time, monotonic time and sleeping, behind one object.

Leases, resend timers, the liveness audit, peer polls and registry heartbeats all
depend on time. Handing every part of a worker one clock lets a test run several
workers in one event loop and move time forward by hand (:class:`ManualClock`): a
five-minute lease expires in a millisecond, and the same test always sees the same
order of timers.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall time (seconds since the epoch): comparable across processes, so it is
        what gets journaled or written to the registry."""
        ...

    def monotonic(self) -> float:
        """Time for intervals within this process (never jumps back)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clocks and ``asyncio.sleep``: what a worker runs on."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that moves only when told (:meth:`advance`); sleepers wake in deadline
    order once time reaches their deadline. Wall and monotonic time are the same number."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, next(self._order), wake))
        await wake

    def advance(self, seconds: float) -> int:
        """Move time forward and wake every sleeper now due; returns how many woke.
        (Jumps are taken whole: a caller that needs the loops in between to run, e.g.
        so a lease renewal lands before the lease is judged, advances in small steps.)"""
        self.now += seconds
        woken = 0
        while self._sleepers and self._sleepers[0][0] <= self.now:
            _, _, wake = heapq.heappop(self._sleepers)
            if not wake.done():
                wake.set_result(None)
                woken += 1
        return woken
