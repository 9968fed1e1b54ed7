"""The sandboxes of one worker: a pool per configured sandbox, one provider for agents.

This is the :class:`~matrixhpc.sandbox.types.SandboxProvider` the runtime hands to
agents through their context. It also runs the pools' reaper and, at the end, stops
everything it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from matrixhpc.sandbox.pool import Pool, SlotSandbox
from matrixhpc.sandbox.types import SandboxError

REAP_EVERY = 5.0  # seconds between the reaper's rounds (at most: keep_s / 4 when shorter)


class Sandboxes:
    def __init__(self, pools: Mapping[str, Pool]) -> None:
        self.pools = dict(pools)

    def names(self) -> Sequence[str]:
        return list(self.pools)

    async def open(self) -> None:
        for pool in self.pools.values():
            await pool.open()

    async def close(self, *, run_finished: bool = False) -> None:
        for pool in self.pools.values():
            await pool.close(run_finished=run_finished)

    async def acquire(self, name: str, key: str) -> tuple[SlotSandbox, bool]:
        pool = self.pools.get(name)
        if pool is None:
            raise SandboxError(f"no sandbox named {name!r} (configured: {sorted(self.pools)})")
        return await pool.acquire(key)

    def holds(self, key: str) -> bool:
        return any(pool.holds(key) for pool in self.pools.values())

    def park(self, key: str) -> None:
        for pool in self.pools.values():
            pool.park(key)

    async def release(self, key: str) -> None:
        for pool in self.pools.values():
            await pool.release(key)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: pool.stats() for name, pool in self.pools.items()}

    async def maintain(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """The idle reaper: a round every few seconds (``sleep`` is the worker's clock)."""
        if not self.pools:
            return
        every = min(REAP_EVERY, *(p.spec.keep_s / 4 for p in self.pools.values()))
        while True:
            await sleep(every)
            for pool in self.pools.values():
                await pool.reap()
