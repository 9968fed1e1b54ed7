"""The worker: admits its slice of the dataset, steps tasks, hands them to peers.

Per task, a coroutine runs steps back to back while this worker hosts the next
role and is not overloaded (no serialisation for local hops); otherwise the task
is handed to the least-loaded peer hosting that role (acknowledged hand-off, see
:mod:`handoff`). A finished task goes back to its origin, which writes it once.

Everything a worker holds is journaled (:mod:`journal`, :mod:`recovery`): a
worker restarted with the same identity replays its journal and continues each
dialogue from its last journaled step. The worker finishes when every worker of
the run has declared its own tasks written: no task can then be in flight.

Liveness: every held task is driven by a coroutine or a resend timer, which a periodic
audit checks (:mod:`liveness`); every background job is supervised (:mod:`supervisor`):
a failure, a journal that cannot be written, or an LLM service gone for longer than its
``replica_wait`` stops the worker resumably with the reason, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

import zmq.asyncio

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.codec import CodecError, Control, FrameType, decode, encode_ack, encode_renew
from matrixhpc.data.readers import RowError
from matrixhpc.data.writers import ErrorLog, ShardWriter, recover_shards
from matrixhpc.errors import ResourceUnavailable
from matrixhpc.llm.types import ChatClient
from matrixhpc.routing import Router
from matrixhpc.runtime.admission import slice_items, task_seed
from matrixhpc.runtime.copies import still_current, supersedes
from matrixhpc.runtime.handoff import Handoffs
from matrixhpc.runtime.journal import Journal, JournalError
from matrixhpc.runtime.liveness import Liveness
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.peers import KIND as WORKERS
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.recovery import (
    Key,
    Recovered,
    key_of,
    recover,
    snapshot_records,
    step_record,
    task_record,
)
from matrixhpc.runtime.registry import Registry, atomic_write_json
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.stats import WorkerStats, base_status
from matrixhpc.runtime.stepping import advance, conclude, run_step
from matrixhpc.runtime.supervisor import Supervisor
from matrixhpc.runtime.transport import CurveKeys, Inbox, Outbox
from matrixhpc.task import END, Task, Turn

log = logging.getLogger(__name__)

PEER_POLL = (0.2, 5.0)  # a task waiting for a worker hosting its role: first and last poll
AUDIT_INTERVAL = 5.0  # seconds between liveness audits
RENEW_EVERY = 30.0  # seconds between lease renewals, at most (a quarter lease when shorter)


def renew_interval(lease: float) -> float:
    """How often a worker tells origins which of their tasks it is driving."""
    return min(lease / 4, RENEW_EVERY)
# the worker's, not the task's: stop resumably. An OSError here comes from the journal or
# the output shard (an agent's own errors are its step's, see run_step)
FAULTS = (ResourceUnavailable, JournalError, OSError)


class Worker:
    def __init__(
        self,
        spec: WorkerSpec,
        agents: dict[str, Agent],
        router: Router,
        llm: ChatClient,
        registry: Registry,
    ) -> None:
        self.spec = spec
        self.agents = agents
        self.router = router
        self.ctx = AgentContext(llm=llm, worker=spec.name)
        self.registry = registry
        self.peers = PeerDirectory(registry, spec.name)
        self.stats = WorkerStats()
        self.out_dir = spec.run_dir / "output"
        self.journal = Journal(
            spec.run_dir / "journal" / spec.name,
            spec.durability,
            commit_interval=spec.commit_interval,
            segment_bytes=spec.segment_bytes,
        )
        self.errors = ErrorLog(self.out_dir, spec.name)
        self.book: OriginBook
        self.held: dict[str, Task] = {}  # every task this worker is responsible for
        self.seen: set[Key] = set()  # hand-offs taken (dedup)
        self.slots = asyncio.Semaphore(spec.max_active)
        self.active = 0
        self.queued = 0
        self.admission_done = False
        self.origin_done = asyncio.Event()
        self.repaired: list[dict[str, Any]] = []
        self.liveness = Liveness()
        self.waiting: dict[str, int] = {}  # tasks waiting for a worker that hosts a role
        self.renewed = 0
        # admitted here, admission not yet known durable: a copy must not leave before it
        # is (a copy of an admission the origin forgot in a crash could never be written)
        self._unsaved: set[str] = set()
        self.fault: str | None = None
        self.supervisor: Supervisor
        self._zmq = zmq.asyncio.Context()
        curve = CurveKeys.create(spec.run_dir / "secrets" / "curve.key") if spec.encrypt else None
        self.inbox = Inbox(self._zmq, spec.host, curve=curve)
        self.outbox = Outbox(self._zmq, curve=curve)
        self.handoffs = Handoffs(spec.name, self.journal, self.outbox, self.peers, spec.ack_timeout)

    # ------------------------------------------------------------- lifecycle

    async def run(self) -> bool:
        """Run to the end of the whole run (True), or until cancelled or a fault stops
        this worker (False: resumable; the fault is logged and in the status file)."""
        self.supervisor = Supervisor()
        try:
            recovered = self._recover()
            self.journal.open()
        except (JournalError, OSError) as exc:
            self.fault = f"cannot start from the journal: {exc}"
            log.error("worker not started: %s", self.fault)
            status = {**base_status(self.spec.name, self.spec.group), "fault": self.fault}
            with contextlib.suppress(OSError):
                atomic_write_json(self.spec.run_dir / "status" / f"{self.spec.name}.json", status)
            return False
        self.journal.pre_write.append(self.book.writer.flush)
        self.journal.sync_fds.append(self.book.writer.fileno)
        self.journal.snapshot = self._snapshot
        self._publish()
        self.peers.refresh(fresh=True)
        loops = {
            "inbox": self._receive_loop(),
            "status": self._status_loop(),
            "leases": self._lease_loop(),
            "audit": self._audit_loop(),
            "hand-off watcher": self.handoffs.watch(self._redispatch),
            "journal": self._journal_watch(),
        }
        for name, coro in loops.items():
            self.supervisor.start(coro, name)
        main = asyncio.ensure_future(self._main(recovered))
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
            await self._shutdown(completed)
        return completed

    async def _journal_watch(self) -> None:
        """A journal that can no longer be written stops the worker even when nothing
        is waiting on a commit at that moment."""
        failure = await self.journal.failed()
        self.supervisor.fail(f"journal: {failure}")

    async def _main(self, recovered: Recovered) -> bool:
        self._resume(recovered)
        await self._admit_all()
        await self.origin_done.wait()
        self._publish()
        await self._wait_for_peers()
        return True

    async def _shutdown(self, completed: bool) -> None:
        """Stop stepping, commit the journal and the output, leave the registry entry."""
        await self.supervisor.cancel_all()
        try:
            await self.journal.close()
        except Exception as exc:  # a failing disk: what is on disk stays valid
            log.error("journal could not be closed cleanly: %s", exc)
            self.fault = self.fault or f"journal: {exc}"
        with contextlib.suppress(OSError):
            self.book.writer.close()
            self.errors.close()
        self._publish(state="exited" if completed else "stopped")
        self._write_status()
        self.outbox.close()
        self.inbox.close()
        self._zmq.term()

    def _recover(self) -> Recovered:
        state = recover(self.journal.replay())
        shards = recover_shards(self.out_dir, self.spec.name)
        self.repaired = shards.repaired
        for repair in shards.repaired:
            log.warning("repaired torn output shard: %s", repair)
        if state.records == 0 and shards.ids:
            log.warning(
                "journal %s is empty but %d records were written: it was lost. Unwritten tasks "
                "are admitted again; tasks held here for other origins come back when their "
                "leases expire (workers.lease = %gs)",
                self.journal.dir,
                len(shards.ids),
                self.spec.lease,
            )
        writer = ShardWriter(
            self.out_dir,
            self.spec.name,
            self.spec.shard_records,
            shards.shards,
            durable=self.spec.durability != "off",
        )
        self.book = OriginBook(writer, self.journal, self.spec.window)
        self.book.restore(state.admitted, shards)
        self.held = {
            task_id: task
            for task_id, task in state.held.items()
            if not (task.origin == self.spec.name and task_id in self.book.written)
        }
        self.seen = state.seen
        self.stats.replayed = state.records
        return state

    def _resume(self, state: Recovered) -> None:
        pending = {i: p for i, p in state.pending.items() if self.held.get(i) is p.task}
        self.handoffs.adopt(pending)
        for task in self.held.values():
            if task.id not in pending:
                self._spawn(self._drive(task))
        self._check_origin_done()

    def _snapshot(self) -> list[list[Any]]:
        return snapshot_records(self.book.in_flight, self.held, self.handoffs.pending)

    async def _wait_for_peers(self) -> None:
        interval = max(0.25, self.registry.scan_interval / 4)
        while True:
            self.peers.refresh(fresh=True)
            if self.peers.finished(self.spec.count) and self.active == 0:
                return
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str = "task") -> None:
        self.supervisor.start(coro, name)

    # ------------------------------------------------------------- admission

    async def _admit_all(self) -> None:
        spec = self.spec
        items = slice_items(
            spec.dataset_path,
            limit=spec.dataset_limit,
            shard=(spec.index, spec.count),
            required=list(spec.required),
            trials=spec.trials,
            origin=spec.name,
            run_seed=spec.seed,
        )
        resumed = bool(self.book.written or self.book.in_flight)
        for item in items:
            if isinstance(item, RowError):
                if not resumed or not self.errors.path.exists():
                    self.errors.write(item.to_record())
                self.stats.row_errors += 1
            elif not self.book.known(item.id):
                await self.book.admit(item)
                self._start(item)
        self.admission_done = True
        self._check_origin_done()

    def _start(self, task: Task) -> None:
        """A newly admitted (or re-issued) task: journal it and start stepping it here."""
        task.next = self.router.first(task)
        self.held[task.id] = task
        self._unsaved.add(task.id)
        self.journal.append(task_record(task))
        self._spawn(self._drive(task))

    def _check_origin_done(self) -> None:
        if self.admission_done and not self.book.in_flight:
            self.origin_done.set()

    async def _lease_loop(self) -> None:
        """Renew the leases of the tasks held here at their origins, and re-issue this
        origin's tasks that nobody has reported moving within their lease."""
        renewed_at = time.monotonic()
        period = min(5.0, self.spec.lease / 4)
        while True:
            slept = time.monotonic()
            await asyncio.sleep(period)
            if time.monotonic() - slept > period + self.spec.lease / 2:
                # this process was stopped or suspended: the renewals sent meanwhile are
                # still in its inbox, so nobody's silence can be judged yet
                self.book.hear_all()
            if time.monotonic() - renewed_at >= renew_interval(self.spec.lease):
                renewed_at = time.monotonic()
                await self._renew_leases()
            for expired in self.book.expired(self.spec.lease, self.held):
                self._reissue(expired)

    def _reissue(self, task_id: str) -> None:
        attempts = self.book.attempts(task_id)
        if attempts >= self.spec.max_attempts:
            reason = f"no attempt came back: gave up after {attempts} leases expired"
            log.error("task %s: %s", task_id, reason)
            self.book.give_up(task_id, self.spec.name, reason)
            self._check_origin_done()
            return
        task = self.book.reissue(task_id, task_seed(self.spec.seed, task_id), self.spec.name)
        log.warning("lease expired: re-issuing %s as attempt %d", task_id, task.attempt)
        self._start(task)

    async def _renew_leases(self) -> None:
        """One CONTROL frame per origin listing the tasks that are moving here."""
        by_origin: dict[str, list[tuple[str, int, int]]] = {}
        for task in self.held.values():
            if task.origin != self.spec.name:
                by_origin.setdefault(task.origin, []).append((task.id, task.token, task.attempt))
        for origin, leases in by_origin.items():
            address = self.peers.address_of(origin)
            if address is not None and await self.outbox.send(
                address, encode_renew(self.spec.name, leases)
            ):
                self.renewed += len(leases)

    async def _audit_loop(self) -> None:
        """The liveness invariant: a held task nothing drives is logged and re-driven."""
        while True:
            await asyncio.sleep(AUDIT_INTERVAL)
            for task in self.liveness.audit(self.held, self.handoffs.pending):
                self._spawn(self._drive(task), f"drive {task.id}")

    # ------------------------------------------------------------- stepping

    async def _drive(self, task: Task) -> None:
        """Run ``task`` here for as long as this worker should, then dispatch it."""
        with self.liveness.drive(task.id):
            if await self._step_here(task):
                await self._dispatch(task)

    async def _step_here(self, task: Task) -> bool:
        """Step ``task`` while this worker keeps it; False if it must not be dispatched
        (a newer copy replaced it, or the worker is stopping on a fault)."""
        self.queued += 1
        async with self.slots:
            self.queued -= 1
            self.active += 1
            try:
                while self._holds(task) and not task.finished and self._keeps(task.next):
                    await self._step(self.agents[task.next], task)
            except FAULTS as exc:  # not the task's failure: it stays held, as journaled
                self.supervisor.fail(f"{type(exc).__name__}: {exc}")
                return False
            except Exception as exc:  # routing or bookkeeping bug: fail the task, keep it
                log.exception("task %s failed outside its agent", task.id)
                self._fail(task, f"{type(exc).__name__}: {exc}")
            finally:
                self.active -= 1
        return self._holds(task)

    def _holds(self, task: Task) -> bool:
        """Whether ``task`` is still worth driving here (:mod:`copies`)."""
        return still_current(self.held.get(task.id), task)

    def _keeps(self, role: str) -> bool:
        return role in self.agents and (self.queued == 0 or not self.peers.hosts(role))

    async def _step(self, agent: Agent, task: Task) -> None:
        turn = await run_step(agent, task, self.ctx, self.stats, self.spec.name)
        advance(self.router, task)
        self.journal.append(step_record(task, turn))
        if self.spec.durability == "strict":
            await self.journal.commit()

    def _fail(self, task: Task, reason: str) -> None:
        turn: Turn = {"role": task.next, "content": "", "error": reason, "worker": self.spec.name}
        task.history.append(turn)
        task.hop += 1
        task.next = END
        conclude(task)
        self.journal.append(step_record(task, turn))

    # ------------------------------------------------------------- hand-off

    async def _dispatch(self, task: Task) -> None:
        if task.finished:
            if task.origin == self.spec.name:
                self._complete(task)
            else:
                await self.handoffs.send(task, task.origin, FrameType.RETURN)
            return
        if not self._holds(task):
            return  # a newer copy replaced it here
        peer = self.peers.pick(task.next)
        if peer is None and task.next not in self.agents:
            peer = await self._wait_for_role(task)
        if peer is None:
            self._spawn(self._drive(task), f"drive {task.id}")
        elif self._holds(task):
            if task.id in self._unsaved:  # its admission must be durable before it leaves
                await self.journal.commit()
                self._unsaved.discard(task.id)
            await self.handoffs.send(task, peer[0], FrameType.TASK)
            self.stats.sent += 1

    async def _wait_for_role(self, task: Task) -> tuple[str, str] | None:
        """Wait (as long as it takes: its workers may be requeued) for a live worker
        hosting the task's next role; polls back off so waiting tasks cost little."""
        role, poll = task.next, PEER_POLL[0]
        self.waiting[role] = self.waiting.get(role, 0) + 1
        try:
            while self._holds(task):
                await asyncio.sleep(poll * random.uniform(0.8, 1.2))
                poll = min(poll * 2, PEER_POLL[1])
                self.peers.refresh(fresh=True)
                peer = self.peers.pick(role)
                if peer is not None:
                    return peer
            return None
        finally:
            self.waiting[role] -= 1

    def _redispatch(self, task: Task) -> None:
        """A hand-off whose peer left: route it again, as a job of its own."""
        self._spawn(self._drive(task), f"re-route {task.id}")

    def _complete(self, task: Task) -> None:
        self._unsaved.discard(task.id)
        self.book.complete(task)
        self._release(task)
        self._check_origin_done()

    def _release(self, task: Task) -> None:
        if self.held.get(task.id) is task:
            del self.held[task.id]

    # ------------------------------------------------------------- inbox

    async def _receive_loop(self) -> None:
        while True:
            frame = await self.inbox.recv()
            try:
                kind, body = decode(frame)
            except CodecError:
                self.stats.dropped_frames += 1
                continue
            if kind is FrameType.TASK:
                self._spawn(self._accept(*body), "accept")
            elif kind is FrameType.RETURN:
                self._spawn(self._accept_return(*body), "accept return")
            elif kind is FrameType.ACK:
                task = self.handoffs.acked(body)
                if task is not None:
                    self._release(task)
            elif body[1] is Control.RENEW:
                for lease in body[2]:
                    self.book.renew(*lease)

    async def _accept(self, sender: str, task: Task) -> None:
        """Take a hand-off: journal it, commit, then ACK (so it can never be lost)."""
        key = key_of(task)
        stale = self._stale_here(task)
        self.book.stale += stale
        if stale or key in self.seen or supersedes(self.held.get(task.id), task):
            self.stats.duplicates += 1
            await self.journal.commit()
            await self._ack(sender, key)
            return
        self.seen.add(key)
        self.stats.received += 1
        with self.liveness.drive(task.id):
            self.held[task.id] = task
            self.journal.append(task_record(task))
            await self.journal.commit()
            await self._ack(sender, key)
        await self._drive(task)

    def _stale_here(self, task: Task) -> bool:
        """One of this origin's own tasks that it can never write: already written, or of
        an admission it does not know (issued by an incarnation whose journal was lost)."""
        return task.origin == self.spec.name and not self.book.accepts(task)

    async def _accept_return(self, sender: str, task: Task) -> None:
        """A finished task back at its origin: write it once, commit, then ACK."""
        if task.origin != self.spec.name:
            self.stats.dropped_frames += 1
        elif self.book.complete(task):
            self.held.pop(task.id, None)  # a later attempt driven here is now surplus
            self._check_origin_done()
        await self.journal.commit()
        await self._ack(sender, key_of(task))

    async def _ack(self, sender: str, key: Key) -> None:
        address = self.peers.address_of(sender)
        if address is None:
            self.peers.refresh(fresh=True)
            address = self.peers.address_of(sender)
        if address is not None:
            await self.outbox.send(address, encode_ack(*key))

    # ------------------------------------------------------------- status

    async def _status_loop(self) -> None:
        while True:
            self.peers.refresh()
            self._publish()
            self._write_status()
            self.book.writer.write_index()
            self.errors.flush()
            await asyncio.sleep(self.spec.flush_interval)

    def _publish(self, state: str = "running") -> None:
        entry = {
            "address": self.inbox.address,
            "group": self.spec.group,
            "roles": sorted(self.agents),
            "active": self.active,
            "queued": self.queued,
            "max_active": self.spec.max_active,
            "origin_done": self.origin_done.is_set(),
            "state": state,
        }
        # once this origin is done the entry must outlive its heartbeat: peers still
        # count it when deciding the whole run has finished
        ttl = None if self.origin_done.is_set() else -1.0
        with contextlib.suppress(OSError):
            self.registry.register(WORKERS, self.spec.name, entry, ttl=ttl)

    def _llm_stats(self) -> dict[str, Any]:
        """The LLM client's view of each replica, when the client keeps one."""
        stats = getattr(self.ctx.llm, "stats", None)
        return stats() if callable(stats) else {}

    def _write_status(self) -> None:
        book = self.book
        status = base_status(self.spec.name, self.spec.group)
        status.update(
            self.stats.counters(),
            admitted=book.admitted,
            done=book.ok + book.failed,
            ok=book.ok,
            failed=book.failed,
            in_flight=len(book.in_flight),
            held=len(self.held),
            active=self.active,
            queued=self.queued,
            duplicate_returns=book.duplicates,
            stale=book.stale,
            reissued=book.reissued,
            renewed=self.renewed,
            redriven=self.liveness.redriven,
            waiting_for_role={r: n for r, n in self.waiting.items() if n},
            fault=self.fault,
            pending_acks=len(self.handoffs.pending),
            resent=self.handoffs.resent,
            rerouted=self.handoffs.rerouted,
            journal=self.journal.stats,
            llm=self._llm_stats(),
            repaired=self.repaired,
            origin_done=self.origin_done.is_set(),
            admission_done=self.admission_done,
            updated=time.time(),
            **self.stats.rates(book.ok + book.failed),
        )
        with contextlib.suppress(OSError):
            atomic_write_json(self.spec.run_dir / "status" / f"{self.spec.name}.json", status)
