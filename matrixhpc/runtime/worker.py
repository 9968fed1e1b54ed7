"""The worker: admits its slice of the dataset, steps tasks, hands them to peers.

Per task, a coroutine runs steps back to back while this worker hosts the next
role and is not overloaded (no serialisation for local hops); otherwise the
task is encoded once and pushed to the least-loaded peer hosting that role. A
finished task goes back to its origin, which writes it exactly once.

The worker finishes when every worker of the run has declared its own tasks
written: no task can then be in flight anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq.asyncio

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.codec import CodecError, FrameType, decode, encode_task
from matrixhpc.data.readers import RowError, iter_rows
from matrixhpc.data.writers import ErrorLog, ShardWriter
from matrixhpc.llm.types import ChatClient
from matrixhpc.routing import Router
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.peers import KIND as WORKERS
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.registry import Registry, atomic_write_json
from matrixhpc.runtime.stats import WorkerStats, base_status
from matrixhpc.task import END, Task

log = logging.getLogger(__name__)

PEER_WAIT = 120.0  # seconds a task waits for some live worker to host its next role


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    index: int
    count: int
    group: str
    run_dir: Path
    dataset_path: str
    dataset_limit: int | None = None
    trials: int = 1
    required: tuple[str, ...] = ()
    seed: int = 0
    window: int = 256
    max_active: int = 4096
    host: str = "127.0.0.1"
    shard_records: int = 100_000
    flush_interval: float = 1.0


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.blake2b(f"{run_seed}:{task_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little")


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
        out_dir = spec.run_dir / "output"
        self.book = OriginBook(ShardWriter(out_dir, spec.name, spec.shard_records), spec.window)
        self.errors = ErrorLog(out_dir, spec.name)
        self.slots = asyncio.Semaphore(spec.max_active)
        self.active = 0
        self.queued = 0
        self.admission_done = False
        self.origin_done = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._zmq = zmq.asyncio.Context()
        self.inbox: Any = None
        self.outbox: Any = None

    # ------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        from matrixhpc.runtime.transport import Inbox, Outbox

        self.inbox = Inbox(self._zmq, self.spec.host)
        self.outbox = Outbox(self._zmq)
        self._publish()
        loops = [
            asyncio.create_task(self._receive_loop()),
            asyncio.create_task(self._status_loop()),
        ]
        try:
            await self._admit_all()
            await self.origin_done.wait()
            self._publish()
            await self._wait_for_peers()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self._publish(state="exited")
            self._write_status()
            self.book.writer.close()
            self.errors.close()
            self.outbox.close()
            self.inbox.close()
            self._zmq.term()

    async def _wait_for_peers(self) -> None:
        while True:
            self.peers.refresh(fresh=True)
            if self.peers.finished(self.spec.count) and self.active == 0:
                return
            await asyncio.sleep(0.25)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        job = asyncio.create_task(coro)
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------- admission

    async def _admit_all(self) -> None:
        spec = self.spec
        rows = iter_rows(
            spec.dataset_path,
            limit=spec.dataset_limit,
            shard=(spec.index, spec.count),
            required=list(spec.required),
        )
        for item in rows:
            if isinstance(item, RowError):
                self.errors.write(item.to_record())
                self.stats.row_errors += 1
                continue
            for trial in range(spec.trials):
                task_id = f"r{item.index}-t{trial}"
                task = Task(
                    id=task_id, seed=task_seed(spec.seed, task_id), row=item.data, origin=spec.name
                )
                task.state["trial"] = trial
                await self.book.admit(task)
                task.next = self.router.first(task)
                self._spawn(self._drive(task))
        self.admission_done = True
        self._check_origin_done()

    def _check_origin_done(self) -> None:
        if self.admission_done and not self.book.in_flight:
            self.origin_done.set()

    # ------------------------------------------------------------- stepping

    async def _drive(self, task: Task) -> None:
        """Run ``task`` here for as long as this worker should, then dispatch it."""
        self.queued += 1
        async with self.slots:
            self.queued -= 1
            self.active += 1
            try:
                while not task.finished and self._keeps(task.next):
                    await self._step(self.agents[task.next], task)
            except Exception as exc:  # routing or bookkeeping bug: fail the task, keep it
                log.exception("task %s failed outside its agent", task.id)
                self._fail(task, f"{type(exc).__name__}: {exc}")
            finally:
                self.active -= 1
        await self._dispatch(task)

    def _keeps(self, role: str) -> bool:
        return role in self.agents and (self.queued == 0 or not self.peers.hosts(role))

    async def _step(self, agent: Agent, task: Task) -> None:
        started = time.time()
        try:
            turn = await agent(task, self.ctx)
        except Exception as exc:  # a step's failure is the task's, never the worker's
            self.stats.step_errors += 1
            turn = {"role": agent.name, "content": "", "error": f"{type(exc).__name__}: {exc}"}
        task.hop += 1
        self.stats.steps += 1
        if turn is not None:
            turn["worker"] = self.spec.name
            turn.setdefault("timings", {"start": started, "end": time.time()})
            self.stats.record_turn(agent.name, turn)  # type: ignore[arg-type]
            task.history.append(turn)
        task.next = self.router.after(task)
        if task.finished:
            self._finish(task)

    def _finish(self, task: Task) -> None:
        last = task.last_turn()
        task.error = last.get("error") if last else None
        task.status = "failed" if task.error else "ok"
        task.updated = time.time()

    # ------------------------------------------------------------- hand-off

    async def _dispatch(self, task: Task) -> None:
        if task.finished:
            await self._return(task)
            return
        deadline = time.monotonic() + PEER_WAIT
        while True:
            peer = self.peers.pick(task.next)
            if peer is not None:
                await self.outbox.send(peer[1], encode_task(task))
                self.stats.sent += 1
                return
            if task.next in self.agents:
                self._spawn(self._drive(task))
                return
            if time.monotonic() > deadline:
                self._fail(task, f"no live worker hosts role {task.next!r}")
                await self._return(task)
                return
            await asyncio.sleep(0.2)
            self.peers.refresh(fresh=True)

    def _fail(self, task: Task, reason: str) -> None:
        task.history.append(
            {"role": task.next, "content": "", "error": reason, "worker": self.spec.name}
        )
        task.next = END
        self._finish(task)

    async def _return(self, task: Task) -> None:
        if task.origin == self.spec.name:
            self._complete(task)
            return
        deadline = time.monotonic() + PEER_WAIT
        while (address := self.peers.address_of(task.origin)) is None:
            if time.monotonic() > deadline:  # a forged or foreign task: nobody to return it to
                log.warning("task %s: origin %s unknown; dropped", task.id, task.origin)
                self.stats.orphans += 1
                return
            await asyncio.sleep(0.2)
            self.peers.refresh(fresh=True)
        await self.outbox.send(address, encode_task(task, FrameType.RETURN))
        self.stats.returned += 1

    def _complete(self, task: Task) -> None:
        self.book.complete(task)
        self._check_origin_done()

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
                self.stats.received += 1
                self._spawn(self._drive(body))
            elif kind is FrameType.RETURN:
                self._complete(body)
            else:
                self.stats.dropped_frames += 1  # ACK/CONTROL not used by this runtime yet

    # ------------------------------------------------------------- status

    async def _status_loop(self) -> None:
        while True:
            self.peers.refresh()
            self._publish()
            self._write_status()
            self.book.writer.flush()
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
        self.registry.register(WORKERS, self.spec.name, entry, ttl=ttl)

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
            active=self.active,
            queued=self.queued,
            duplicates=book.duplicates,
            origin_done=self.origin_done.is_set(),
            admission_done=self.admission_done,
            updated=time.time(),
            **self.stats.rates(book.ok + book.failed),
        )
        with contextlib.suppress(OSError):
            atomic_write_json(self.spec.run_dir / "status" / f"{self.spec.name}.json", status)
