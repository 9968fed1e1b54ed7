"""Where a task goes when this worker stops stepping it.

A finished task goes to its origin (written here when that is this worker, else
returned by an acknowledged hand-off); an unfinished one to the least-loaded live
peer hosting its next role, or back to local stepping when none does and this worker
hosts the role. A task whose role nobody hosts right now waits for one, as long as
it takes (its workers may be requeued), with polls that back off so waiting is cheap.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from matrixhpc.agents.sandboxing import sandbox_worker
from matrixhpc.codec import FrameType
from matrixhpc.runtime.admitter import Admitter, Drive
from matrixhpc.runtime.clock import Clock
from matrixhpc.runtime.handoff import Handoffs
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.task import Task

PEER_POLL = (0.2, 5.0)  # a task waiting for a worker hosting its role: first and last poll


class Dispatcher:
    def __init__(
        self,
        me: str,
        roles: Collection[str],
        holdings: Holdings,
        peers: PeerDirectory,
        handoffs: Handoffs,
        admitter: Admitter,
        stats: WorkerStats,
        clock: Clock,
        drive: Drive,
        sandboxed: bool = False,
    ) -> None:
        self.me = me
        self.roles = roles
        self.holdings = holdings
        self.peers = peers
        self.handoffs = handoffs
        self.admitter = admitter
        self.stats = stats
        self.clock = clock
        self.drive = drive
        self.sandboxed = sandboxed  # only then is a task's history scanned for its holder
        self.waiting: dict[str, int] = {}  # tasks waiting for a worker that hosts a role

    async def dispatch(self, task: Task) -> None:
        if task.finished:
            await self._finish(task)
            return
        if not self.holdings.holds(task):
            return  # a newer copy replaced it here
        prefer = sandbox_worker(task) if self.sandboxed else None
        peer = self.peers.pick(task.next, prefer=prefer)
        if peer is None and task.next not in self.roles:
            peer = await self._wait_for_role(task, prefer)
        if peer is None:
            self.drive(task, f"drive {task.id}")
        elif self.holdings.holds(task):
            await self.admitter.before_leaving(task)
            await self.handoffs.send(task, peer[0], FrameType.TASK)
            self.stats.sent += 1

    async def _finish(self, task: Task) -> None:
        if task.origin == self.me:
            self.admitter.complete(task)
        else:
            await self.handoffs.send(task, task.origin, FrameType.RETURN)

    async def _wait_for_role(self, task: Task, prefer: str | None) -> tuple[str, str] | None:
        """Wait for a live worker hosting the task's next role (None: the task is no
        longer this worker's to move); the task's sandbox holder first, when it is back."""
        role, poll = task.next, PEER_POLL[0]
        self.waiting[role] = self.waiting.get(role, 0) + 1
        try:
            while self.holdings.holds(task):
                await self.clock.sleep(poll * random.uniform(0.8, 1.2))
                poll = min(poll * 2, PEER_POLL[1])
                self.peers.refresh(fresh=True)
                peer = self.peers.pick(role, prefer=prefer)
                if peer is not None:
                    return peer
            return None
        finally:
            self.waiting[role] -= 1

    def reroute(self, task: Task) -> None:
        """A hand-off whose peer left: route it again, as a job of its own."""
        self.drive(task, f"re-route {task.id}")
