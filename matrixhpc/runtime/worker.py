"""The worker: admits its slice of the dataset, steps tasks, hands them to peers.

Per task, a coroutine runs steps back to back while this worker hosts the next
role and is not overloaded (no serialisation for local hops); otherwise the task
is handed to the least-loaded peer hosting that role (acknowledged hand-off, see
:mod:`handoff`). A finished task goes back to its origin, which writes it once.

Everything a worker holds is journaled (:mod:`journal`, :mod:`recovery`): a
worker restarted with the same identity replays its journal (:mod:`restore`) and
continues each dialogue from its last journaled step. The worker finishes when every
worker of the run has declared its own tasks written: no task can then be in flight.

This class only coordinates. Each job is a part of its own: the origin's side
(:mod:`admitter`), stepping (:mod:`driver`), dispatch (:mod:`dispatch`), the inbound
protocol (:mod:`inbound`), leases (:mod:`leases`), the liveness audit (:mod:`liveness`)
and reporting (:mod:`reporting`). Its journal, transport, registry, clock and LLM
client are handed in (:class:`~matrixhpc.runtime.parts.Collaborators`, built by
:mod:`assemble`), so a unit test runs several workers in one event loop.

Liveness: every held task is driven by a coroutine or a resend timer, which a periodic
audit checks; every background job is supervised (:mod:`supervisor`): a failure, a
journal that cannot be written, or an LLM service gone for longer than its
``replica_wait`` stops the worker resumably with the reason, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from typing import Any

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.data.writers import ErrorLog
from matrixhpc.routing import Router
from matrixhpc.runtime.admitter import Admitter
from matrixhpc.runtime.dispatch import Dispatcher
from matrixhpc.runtime.driver import Driver
from matrixhpc.runtime.handoff import Handoffs
from matrixhpc.runtime.inbound import Inbound
from matrixhpc.runtime.journal import JournalError
from matrixhpc.runtime.leases import Leases
from matrixhpc.runtime.liveness import Liveness
from matrixhpc.runtime.parts import Collaborators, Parts
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.recovery import Recovered, snapshot_records
from matrixhpc.runtime.reporting import Reporter, write_status
from matrixhpc.runtime.restore import Restored, restore
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.stats import WorkerStats, base_status
from matrixhpc.runtime.supervisor import Supervisor
from matrixhpc.task import Task

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self,
        spec: WorkerSpec,
        agents: Mapping[str, Agent],
        router: Router,
        deps: Collaborators,
    ) -> None:
        self.spec = spec
        self.agents = agents
        self.router = router
        self.deps = deps
        self.journal = deps.journal
        self.ctx = AgentContext(llm=deps.llm, worker=spec.name, sandboxes=deps.sandboxes)
        self.peers = PeerDirectory(deps.registry, spec.name)
        self.stats = WorkerStats()
        self.liveness = Liveness()
        self.errors = ErrorLog(spec.run_dir / "output", spec.name)
        clock = deps.clock
        self.handoffs = Handoffs(
            spec.name,
            deps.journal,
            deps.outbox,
            self.peers,
            spec.ack_timeout,
            clock=clock.monotonic,
            sleep=clock.sleep,
        )
        self.fault: str | None = None
        self.supervisor: Supervisor  # made by run(), in its event loop
        self.parts: Parts  # made by run(), once the journal is replayed
        self.reporter: Reporter

    # ------------------------------------------------------------- lifecycle

    async def run(self) -> bool:
        """Run to the end of the whole run (True), or until cancelled or a fault stops
        this worker (False: resumable; the fault is logged and in the status file)."""
        self.supervisor = Supervisor()
        try:
            restored = restore(self.spec, self.journal, self.deps.clock)
            self.journal.open()
        except (JournalError, OSError) as exc:
            return self._not_started(exc)
        self._build(restored)
        self.reporter.publish()
        self.peers.refresh(fresh=True)
        self._start_loops()
        main = asyncio.ensure_future(self._main(restored.state))
        completed = False
        try:
            ends: set[asyncio.Future[Any]] = {main, self.supervisor.fault}
            await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            completed = main.done() and not main.cancelled() and main.result()
        finally:
            if self.supervisor.fault.done():
                self.fault = self.supervisor.fault.result()
            main.cancel()
            await asyncio.gather(main, return_exceptions=True)
            completed = await self._shutdown(completed)
        return completed

    def _not_started(self, exc: Exception) -> bool:
        self.fault = f"cannot start from the journal: {exc}"
        log.error("worker not started: %s", self.fault)
        status = base_status(self.spec.name, self.spec.group)
        write_status(self.spec, {**status, "fault": self.fault})
        self._close_links()
        return False

    def _build(self, restored: Restored) -> None:
        """The parts, wired to each other and to the journal's hooks."""
        spec, deps, holdings, book = self.spec, self.deps, restored.holdings, restored.book
        self.stats.replayed = restored.state.records
        admitter = Admitter(
            spec, book, self.journal, self.router, holdings, self.errors, self.stats, self._job
        )
        dispatcher = Dispatcher(
            spec.name,
            self.agents,
            holdings,
            self.peers,
            self.handoffs,
            admitter,
            self.stats,
            deps.clock,
            self._job,
            sandboxed=spec.sandboxed,
        )
        driver = Driver(
            spec.name,
            self.agents,
            self.router,
            self.ctx,
            self.stats,
            self.journal,
            holdings,
            self.peers,
            self.liveness,
            dispatcher,
            self.supervisor.fail,
            max_active=spec.max_active,
            strict=spec.durability == "strict",
        )
        inbound = Inbound(
            spec.name,
            deps.inbox,
            deps.outbox,
            self.peers,
            self.journal,
            holdings,
            self.handoffs,
            admitter,
            self.liveness,
            self.stats,
            self.supervisor.start,
            driver.drive,
        )
        leases = Leases(
            spec.name,
            spec.lease,
            book,
            holdings,
            self.peers,
            deps.outbox,
            admitter.reissue,
            deps.clock,
        )
        self.parts = Parts(
            holdings, admitter, dispatcher, driver, inbound, leases, restored.repaired
        )
        self.reporter = Reporter(
            spec,
            self.agents,
            deps,
            self.parts,
            self.peers,
            self.handoffs,
            self.liveness,
            self.stats,
            self.errors,
            lambda: self.fault,
        )
        self.journal.pre_write.append(book.writer.flush)
        self.journal.sync_fds.append(book.writer.fileno)
        self.journal.snapshot = self._snapshot

    def _start_loops(self) -> None:
        parts = self.parts
        loops = {
            "inbox": parts.inbound.run(),
            "status": self.reporter.run(),
            "leases": parts.leases.run(),
            "audit": self.liveness.patrol(
                parts.holdings.tasks, self.handoffs.pending, self._redrive, self.deps.clock.sleep
            ),
            "hand-off watcher": self.handoffs.watch(parts.dispatcher.reroute),
            "journal": self._journal_watch(),
        }
        if self.deps.sandboxes is not None:
            loops["sandbox reaper"] = self.deps.sandboxes.maintain(self.deps.clock.sleep)
        for name, coro in loops.items():
            self.supervisor.start(coro, name)

    def _job(self, task: Task, name: str) -> None:
        """Drive ``task`` as a supervised job."""
        self.supervisor.start(self.parts.driver.drive(task), name)

    def _redrive(self, task: Task) -> None:
        self._job(task, f"drive {task.id}")

    async def _journal_watch(self) -> None:
        """A journal that can no longer be written stops the worker even when nothing
        is waiting on a commit at that moment."""
        failure = await self.journal.failed()
        self.supervisor.fail(f"journal: {failure}")

    async def _main(self, recovered: Recovered) -> bool:
        self._resume(recovered)
        await self.parts.admitter.admit_all()
        await self.parts.admitter.done.wait()
        self.reporter.publish()
        await self._wait_for_peers()
        return True

    def _resume(self, state: Recovered) -> None:
        """Drive again what the journal says this worker held: hand-offs still awaiting
        their ACK are resent by the watcher, every other held task is stepped."""
        held = self.parts.holdings.tasks
        pending = {i: p for i, p in state.pending.items() if held.get(i) is p.task}
        self.handoffs.adopt(pending)
        for task in list(held.values()):
            if task.id not in pending:
                self._job(task, "task")
        self.parts.admitter.check_done()

    def _snapshot(self) -> list[list[Any]]:
        parts = self.parts
        return snapshot_records(
            parts.admitter.book.in_flight, parts.holdings.tasks, self.handoffs.pending
        )

    async def _wait_for_peers(self) -> None:
        """Until every worker has declared its tasks written. A look is one ``stat`` of
        the markers' directory while nothing changes and one listing when something did
        (never a read per worker): N waiting workers cost about 3 N / interval ops/s,
        so the interval grows with N (2.5 s at 1,000 workers, ~1,200 ops/s in all)."""
        count = self.spec.count
        interval = max(0.25, count / 400)
        while True:
            if self.peers.finished(count) and self.parts.driver.active == 0:
                return
            await self.deps.clock.sleep(interval * random.uniform(0.8, 1.2))

    async def _shutdown(self, completed: bool) -> bool:
        """Stop stepping, commit the journal and the output, leave the registry; returns
        whether the worker completed (leaving can fail: then it stops resumably)."""
        await self.supervisor.cancel_all()
        try:
            await self.journal.close()
        # shutdown goes on whatever the journal raised: what is on disk stays valid
        except Exception as exc:  # noqa: BLE001
            log.error("journal could not be closed cleanly: %s", exc)
            self.fault = self.fault or f"journal: {exc}"
        with contextlib.suppress(OSError):
            self.parts.admitter.book.writer.close()
            self.errors.close()
        failure = self.reporter.leave() if completed else None
        if failure is not None:
            log.error("%s", failure)
            self.fault, completed = self.fault or failure, False
        if not completed:
            self.reporter.publish(state="stopped")
        self.reporter.write_status()
        self._close_links()
        return completed

    def _close_links(self) -> None:
        self.deps.outbox.close()
        self.deps.inbox.close()
        self.deps.on_close()
