"""Stepping: run a task's steps back to back while this worker should keep it.

A task stays here while this worker hosts its next role and has no queue (a local
hop costs no serialisation); then it is dispatched (:mod:`dispatch`). At most
``max_active`` tasks step at once; the rest queue, and a queue makes the worker shed
roles that peers also host. A step's own failure is the task's (an error turn); a
fault of the worker's (its journal, its output, an LLM service gone for too long)
stops the worker resumably and leaves the task held, as journaled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.errors import ResourceUnavailable
from matrixhpc.routing import Router
from matrixhpc.runtime.dispatch import Dispatcher
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.journal import Journal, JournalError
from matrixhpc.runtime.liveness import Liveness
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.recovery import step_record
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.runtime.stepping import advance, conclude, run_step
from matrixhpc.task import END, Task, Turn

log = logging.getLogger(__name__)

# the worker's, not the task's: stop resumably. An OSError here comes from the journal or
# the output shard (an agent's own errors are its step's, see run_step)
FAULTS = (ResourceUnavailable, JournalError, OSError)


class Driver:
    def __init__(
        self,
        me: str,
        agents: Mapping[str, Agent],
        router: Router,
        ctx: AgentContext,
        stats: WorkerStats,
        journal: Journal,
        holdings: Holdings,
        peers: PeerDirectory,
        liveness: Liveness,
        dispatcher: Dispatcher,
        fault: Callable[[str], None],
        *,
        max_active: int,
        strict: bool,
    ) -> None:
        self.me = me
        self.agents = agents
        self.router = router
        self.ctx = ctx
        self.stats = stats
        self.journal = journal
        self.holdings = holdings
        self.peers = peers
        self.liveness = liveness
        self.dispatcher = dispatcher
        self.fault = fault  # stops the worker resumably with the reason
        self.strict = strict  # wait for each step's journal commit (durability: strict)
        self.slots = asyncio.Semaphore(max_active)
        self.active = 0
        self.queued = 0

    async def drive(self, task: Task) -> None:
        """Run ``task`` here for as long as this worker should, then dispatch it."""
        with self.liveness.drive(task.id):
            if await self._step_here(task):
                await self._leave_sandboxes(task)
                await self.dispatcher.dispatch(task)

    async def _leave_sandboxes(self, task: Task) -> None:
        """A finished task's sandboxes are reset for others; one that moves on keeps them
        parked here a while (it is sent back here when this worker hosts its next
        sandbox role, see dispatch; see agents/sandboxing.py for what happens elsewhere)."""
        boxes = self.ctx.sandboxes
        if boxes is None or not boxes.holds(task.id):
            return
        if task.finished:
            await boxes.release(task.id)
        else:
            boxes.park(task.id)

    async def _step_here(self, task: Task) -> bool:
        """Step ``task`` while this worker keeps it; False if it must not be dispatched
        (a newer copy replaced it, or the worker is stopping on a fault)."""
        self.queued += 1
        async with self.slots:
            self.queued -= 1
            self.active += 1
            try:
                while self.holdings.holds(task) and not task.finished and self._keeps(task):
                    await self._step(self.agents[task.next], task)
            except FAULTS as exc:  # not the task's failure: it stays held, as journaled
                self.fault(f"{type(exc).__name__}: {exc}")
                return False
            except Exception as exc:  # routing or bookkeeping bug: fail the task, keep it
                log.exception("task %s failed outside its agent", task.id)
                self._fail(task, f"{type(exc).__name__}: {exc}")
            finally:
                self.active -= 1
        return self.holdings.holds(task)

    def _keeps(self, task: Task) -> bool:
        """Whether to step ``task`` here: this worker hosts its next role and has no queue,
        or nobody else hosts the role, or the task's sandbox is here (moving it would
        cost a replay of its sandbox elsewhere)."""
        role = task.next
        if role not in self.agents:
            return False
        boxes = self.ctx.sandboxes
        here = boxes is not None and boxes.holds(task.id)
        return self.queued == 0 or not self.peers.hosts(role) or here

    async def _step(self, agent: Agent, task: Task) -> None:
        turn = await run_step(agent, task, self.ctx, self.stats, self.me)
        turn = advance(self.router, task, turn)  # a new turn if routing failed after none
        if turn is not None:
            turn.setdefault("worker", self.me)
        self.journal.append(step_record(task, turn))
        if self.strict:
            await self.journal.commit()

    def _fail(self, task: Task, reason: str) -> None:
        turn: Turn = {"role": task.next, "content": "", "error": reason, "worker": self.me}
        task.history.append(turn)
        task.hop += 1
        task.next = END
        conclude(task)
        self.journal.append(step_record(task, turn))
