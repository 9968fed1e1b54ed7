"""Whole workers, several in one event loop: hand-offs, ACK loss, restarts, leases, forgery.

Each test runs two or three real :class:`Worker` objects, each with a real journal and
a real file registry under ``tmp_path``, on the in-process transport
(:mod:`matrixhpc.runtime.memory_transport`) and on manual clocks: simulated time moves
only when the test pumps it, so a 20-second lease or a 10-second ACK timeout passes in
a few milliseconds, and always in the same order. Roles are split across workers, so
every step is a hand-off. No processes, no sockets, no LLM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.codec import FrameType, decode, encode_task
from matrixhpc.llm.types import ChatResult
from matrixhpc.registry import Registry
from matrixhpc.routing import SequentialRouter
from matrixhpc.runtime.assemble import journal_for
from matrixhpc.runtime.clock import ManualClock
from matrixhpc.runtime.memory_transport import Frame, Hold, MemoryNetwork
from matrixhpc.runtime.parts import Collaborators
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.worker import Worker
from matrixhpc.task import END, Task, Turn

STEP = 0.25  # simulated seconds per pump


class Say(Agent):
    """A role that answers with its name; with a gate, it first waits for the gate
    (a step that hangs, or a process that is stopped mid-step), for the tasks in
    ``only`` (default: every task)."""

    def __init__(
        self, name: str, gate: asyncio.Event | None = None, only: set[str] | None = None
    ) -> None:
        super().__init__(name)
        self.gate = gate
        self.only = only
        self.entered: list[str] = []

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        self.entered.append(task.id)
        if self.gate is not None and (self.only is None or task.id in self.only):
            await self.gate.wait()
        return {"role": self.name, "content": f"{self.name} by {ctx.worker}"}


class NoLLM:
    """These agents never call an LLM; one that did would fail its test."""

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChatResult:
        raise AssertionError(f"unexpected LLM call: {service} {messages} {params} {metadata}")


@dataclass
class Member:
    worker: Worker
    clock: ManualClock
    agents: dict[str, Say]
    job: asyncio.Task[bool]
    frozen: bool = False

    @property
    def address(self) -> str:
        return self.worker.deps.inbox.address


class Cluster:
    """Workers of one run sharing a run directory, a network and (unless frozen) time."""

    def __init__(self, tmp_path: Path, route: list[str], count: int) -> None:
        self.run_dir = tmp_path / "run"
        self.dataset = tmp_path / "rows.jsonl"
        self.route = route
        self.count = count
        self.time = ManualClock()  # the true time; a frozen worker's clock falls behind it
        self.net = MemoryNetwork(self.time)
        self.members: dict[str, Member] = {}
        self.options: dict[str, Any] = {}
        self.routing: dict[str, Any] = {}  # SequentialRouter options (repeat, stop_when)

    def rows(self, n: int, **options: Any) -> None:
        """The dataset (row ``i`` is admitted by worker ``i % count``) and spec options."""
        self.dataset.write_text("".join(json.dumps({"q": i}) + "\n" for i in range(n)))
        self.options = options

    def start(
        self,
        index: int,
        roles: list[str],
        gate: asyncio.Event | None = None,
        only: set[str] | None = None,
    ) -> Member:
        """Start worker ``index`` hosting ``roles`` (again, after :meth:`stop`: same journal);
        its agents wait for ``gate`` (see :class:`Say`)."""
        spec = WorkerSpec(
            name=f"w{index}",
            index=index,
            count=self.count,
            group="g",
            run_dir=self.run_dir,
            dataset_path=str(self.dataset),
            durability="off",
            commit_interval=0.0,
            encrypt=False,
            **self.options,
        )
        clock = ManualClock(self.time.now)
        deps = Collaborators(
            journal=journal_for(spec),
            inbox=self.net.inbox(spec.name),
            outbox=self.net.outbox(spec.name),
            registry=Registry(self.run_dir / "registry", scan_interval=1.0, clock=clock.time),
            llm=NoLLM(),
            clock=clock,
        )
        agents = {role: Say(role, gate, only) for role in roles}
        worker = Worker(spec, agents, SequentialRouter(self.route, **self.routing), deps)
        member = Member(worker, clock, agents, asyncio.create_task(worker.run()))
        self.members[spec.name] = member
        return member

    async def stop(self, name: str) -> None:
        """Cancel a worker's run (as a SIGTERM does): it shuts down and can be restarted."""
        job = self.members[name].job
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await job

    def freeze(self, name: str) -> Hold:
        """Stop a worker as SIGSTOP does: its time stands still and nothing reaches it."""
        member = self.members[name]
        member.frozen = True
        address = member.address
        return self.net.hold(lambda frame: frame.address == address)

    def thaw(self, name: str, hold: Hold) -> None:
        """SIGCONT: its clock jumps to the true time and what was sent to it arrives."""
        member = self.members[name]
        member.frozen = False
        member.clock.advance(self.time.now - member.clock.now)
        hold.release()

    async def pump(self, until: Callable[[], bool], limit: float = 600.0) -> None:
        """Let the workers run, moving time on by STEP whenever they are idle, until
        ``until()`` holds; fail after ``limit`` simulated seconds."""
        for _ in range(int(limit / STEP)):
            await self._settle()
            if until():
                return
            self.tick()
        raise AssertionError(f"not reached within {limit} simulated seconds")

    async def pump_for(self, seconds: float) -> None:
        for _ in range(int(seconds / STEP)):
            await self._settle()
            self.tick()

    def tick(self) -> None:
        self.time.advance(STEP)
        for member in self.members.values():
            if not member.frozen:
                member.clock.advance(STEP)

    async def _settle(self) -> None:
        """Wait for every journal's pending writes (real I/O), then let what they
        unblocked run: time moves only when the workers have nothing left to do now."""
        for member in self.members.values():
            await asyncio.wait_for(member.worker.journal.commit(), 10.0)
        for _ in range(20):
            await asyncio.sleep(0)

    async def finish(self) -> None:
        """Run until every worker has finished the whole run, and check they all did."""
        await self.pump(lambda: all(m.job.done() for m in self.members.values()))
        for name, member in self.members.items():
            assert member.job.result() is True, f"{name}: {member.worker.fault}"

    async def close(self) -> None:
        for name, member in self.members.items():
            if not member.job.done():
                await self.stop(name)

    def records(self) -> list[dict[str, Any]]:
        out = self.run_dir / "output"
        return [
            json.loads(line)
            for path in sorted(out.glob("part-*.jsonl"))
            for line in path.read_text().splitlines()
        ]

    def total(self, counter: Callable[[Worker], int]) -> int:
        return sum(counter(m.worker) for m in self.members.values())


@pytest_asyncio.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[Callable[[list[str], int], Cluster]]:
    made: list[Cluster] = []

    def make(route: list[str], count: int) -> Cluster:
        made.append(Cluster(tmp_path, route, count))
        return made[-1]

    yield make
    for cluster in made:
        await cluster.close()


def assert_exactly_once(records: list[dict[str, Any]], expected: int) -> None:
    ids = [r["id"] for r in records]
    assert len(ids) == expected, sorted(ids)
    assert len(set(ids)) == expected, f"written twice: {sorted(i for i in ids if ids.count(i) > 1)}"
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records]


def workers_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(turn["role"], turn["worker"]) for turn in record["history"]]


THREE = ["a", "b", "c"]
HANDED_ON = [("a", "w0"), ("b", "w1"), ("c", "w2")]  # every step on another worker


@pytest.mark.asyncio
async def test_every_task_is_handed_from_worker_to_worker_and_written_once(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(THREE, 3)
    cluster.rows(6, trials=2)
    for index, role in enumerate(THREE):
        cluster.start(index, [role])
    await cluster.finish()
    records = cluster.records()
    assert_exactly_once(records, 12)
    assert all(workers_of(r) == HANDED_ON for r in records)
    assert {r["origin"] for r in records} == {"w0", "w1", "w2"}  # every worker admits
    # a -> b -> c, and first to w0 (hosting "a") for the 8 tasks admitted by w1 and w2
    assert cluster.total(lambda w: w.stats.sent) == 12 * 2 + 8
    # nothing was lost, so nothing was resent or received twice
    assert cluster.total(lambda w: w.handoffs.resent) == 0
    assert cluster.total(lambda w: w.stats.duplicates) == 0


@pytest.mark.asyncio
async def test_a_lost_ack_is_resent_and_the_task_still_written_once(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(THREE, 3)
    cluster.rows(3, ack_timeout=10.0)
    # lose w2's ACK of r0-t0 (from w1, b -> c): w1 never sees that task again
    cluster.net.drop(
        lambda f: f.kind == FrameType.ACK and f.sender == "w2" and decode(f.data)[1][0] == "r0-t0"
    )
    gate = asyncio.Event()  # r2-t0 waits at c, so the run outlasts the ACK timeout
    sender, receiver = cluster.start(1, ["b"]), cluster.start(2, ["c"], gate, {"r2-t0"})
    origin = cluster.start(0, ["a"])
    await cluster.pump(
        lambda: sender.worker.handoffs.resent > 0 and not sender.worker.handoffs.pending
    )
    # w1 resent once, after its ACK timeout; w2, which had finished r0-t0 meanwhile,
    # knew the copy, dropped it and ACKed it again
    assert "r0-t0" in origin.worker.parts.admitter.book.written
    assert sender.worker.handoffs.resent == 1
    assert receiver.worker.stats.duplicates == 1
    assert cluster.net.dropped == 1
    gate.set()
    await cluster.finish()
    assert_exactly_once(cluster.records(), 3)
    assert sorted(receiver.agents["c"].entered) == ["r0-t0", "r1-t0", "r2-t0"]  # stepped once


@pytest.mark.asyncio
async def test_a_worker_restarted_mid_run_continues_from_its_journal(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(THREE, 3)
    cluster.rows(6)
    hang = asyncio.Event()  # never set: the first w1 is stopped mid-step
    cluster.start(0, ["a"])
    first = cluster.start(1, ["b"], gate=hang)
    cluster.start(2, ["c"])
    await cluster.pump(lambda: len(first.agents["b"].entered) >= 3)
    await cluster.stop("w1")
    assert first.job.cancelled()
    second = cluster.start(1, ["b"])
    await cluster.finish()
    records = cluster.records()
    assert_exactly_once(records, 6)
    assert all(workers_of(r) == HANDED_ON for r in records)
    assert second.worker.stats.replayed > 0
    assert set(first.agents["b"].entered) <= set(second.agents["b"].entered)


@pytest.mark.asyncio
async def test_a_lease_expires_on_a_stopped_peer_and_the_first_attempt_to_finish_wins(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(["a", "b"], 3)
    cluster.rows(2, lease=20.0)  # r0-t0 admitted by w0, r1-t0 by w1
    gate = asyncio.Event()
    origin = cluster.start(0, ["a"])
    stopped = cluster.start(1, ["b"], gate=gate)
    await cluster.pump(
        lambda: len(stopped.agents["b"].entered) == 2 and not origin.worker.handoffs.pending
    )
    await cluster.pump_for(2.0)  # its registry entry shows both tasks in its hands
    hold = cluster.freeze("w1")
    cluster.start(2, ["b"])  # a peer that can take the re-issued attempt
    book = origin.worker.parts.admitter.book
    await cluster.pump(lambda: "r0-t0" in book.written)
    assert book.reissued == 1  # nobody renewed its lease
    cluster.thaw("w1", hold)
    gate.set()  # the stopped worker finishes both tasks: r0-t0's copy is a stale attempt
    await cluster.finish()
    first, second = sorted(cluster.records(), key=lambda r: r["id"])
    assert_exactly_once([first, second], 2)
    assert (first["id"], first["attempt"], workers_of(first)) == (
        "r0-t0",
        1,
        [("a", "w0"), ("b", "w2")],
    )
    assert (second["id"], second["attempt"], workers_of(second)) == (
        "r1-t0",
        0,
        [("a", "w0"), ("b", "w1")],
    )
    assert book.duplicates == 1  # the first attempt came back late and was dropped
    assert stopped.worker.stats.steps == 2


@pytest.mark.asyncio
async def test_forged_frames_are_dropped(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(["a", "b"], 2)
    cluster.rows(1)
    gate = asyncio.Event()
    origin = cluster.start(0, ["a"])
    peer = cluster.start(1, ["b"], gate=gate)
    await cluster.pump(lambda: len(peer.agents["b"].entered) == 1)
    (task_id,) = peer.agents["b"].entered
    forged = Task(task_id, 0, {}, "w0", next=END, token=12345, status="ok")
    forged.history.append({"role": "b", "content": "forged", "worker": "w1"})
    mallory = cluster.net.outbox("mallory")
    for frame in (
        b"\x02not msgpack \xc1",
        encode_task(forged, FrameType.RETURN, "w1"),  # finished, with a guessed token
        encode_task(Task(task_id, 0, {}, "w0", next="a", token=999), FrameType.TASK, "w1"),
    ):
        assert await mallory.send(origin.address, frame)
    book = origin.worker.parts.admitter.book
    await cluster.pump(lambda: origin.worker.stats.dropped_frames == 1 and book.stale == 2)
    assert not book.written
    gate.set()
    await cluster.finish()
    (record,) = cluster.records()
    assert workers_of(record) == [("a", "w0"), ("b", "w1")]
    assert "forged" not in json.dumps(record)


def test_the_network_drops_delays_holds_and_cuts() -> None:
    """The in-process transport's fault hooks do what the worker tests rely on."""

    async def scenario() -> None:
        clock = ManualClock()
        net = MemoryNetwork(clock)
        box, out = net.inbox("w1"), net.outbox("w0")
        net.drop(lambda f: f.data == b"lost")
        net.delay(lambda f: f.data == b"late", 5.0)
        assert await out.send(box.address, b"lost")  # accepted, never delivered
        assert await out.send(box.address, b"late")
        assert await out.send(box.address, b"now")
        assert await box.recv() == b"now"
        clock.advance(5.0)
        assert await asyncio.wait_for(box.recv(), 1.0) == b"late"
        hold = net.hold(lambda f: f.sender == "w0")
        assert await out.send(box.address, b"held")
        assert box.queue.empty()
        assert hold.release() == 1
        assert await box.recv() == b"held"
        net.cut(box.address)
        assert not await out.send(box.address, b"x")
        net.mend(box.address)
        box.close()
        assert not await out.send(box.address, b"x")  # a closed inbox is unreachable
        assert net.dropped == 1
        assert net.refused == 2
        assert [f.data for f in net.log] == [b"lost", b"late", b"now", b"held"]
        assert isinstance(net.log[0], Frame)
        assert net.log[0].kind == ord("l")

    asyncio.run(scenario())


@pytest.mark.asyncio
async def test_a_worker_that_cannot_mark_itself_exited_stops_resumably(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    """Servers and the Slurm watcher wait for the "exited" markers: a worker whose marker
    cannot be written (a full disk) must not exit as done, or they would wait forever."""
    cluster = make_cluster(["a", "b"], 2)
    cluster.rows(4)
    failing = cluster.start(0, ["a", "b"])
    cluster.start(1, ["a", "b"])
    real = failing.worker.deps.registry.mark

    def mark(kind: str, name: str) -> None:
        if kind == "exited":
            raise OSError(28, "No space left on device")
        real(kind, name)

    failing.worker.deps.registry.mark = mark  # type: ignore[method-assign]
    await cluster.pump(lambda: all(m.job.done() for m in cluster.members.values()))
    assert failing.job.result() is False
    assert "cannot mark this worker exited" in (failing.worker.fault or "")
    assert cluster.members["w1"].job.result() is True
    assert_exactly_once(cluster.records(), 4)


@pytest.mark.asyncio
async def test_every_task_starts_from_the_initial_state_under_its_trial(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    cluster = make_cluster(["a", "b"], 2)
    cluster.rows(3, trials=2, initial_state={"done": False, "notes": []})
    cluster.routing = {"repeat": True, "stop_when": "state.done or history | length >= 3"}
    cluster.start(0, ["a"])
    cluster.start(1, ["b"])
    await cluster.finish()
    records = cluster.records()
    assert_exactly_once(records, 6)
    assert sorted(r["state"]["trial"] for r in records) == [0, 0, 0, 1, 1, 1]
    assert all(
        r["state"] == {"done": False, "notes": [], "trial": r["state"]["trial"]} for r in records
    )
    assert all(len(r["history"]) == 3 for r in records)


@pytest.mark.asyncio
async def test_a_condition_over_a_key_no_step_set_fails_every_task_naming_it(
    make_cluster: Callable[[list[str], int], Cluster],
) -> None:
    """It used to count as false: the dialogue went on to max_steps and was written ok."""
    cluster = make_cluster(["a", "b"], 2)
    cluster.rows(4)
    cluster.routing = {"repeat": True, "stop_when": "state.done"}
    cluster.start(0, ["a"])
    cluster.start(1, ["b"])
    await cluster.finish()
    records = cluster.records()
    assert len(records) == 4
    error = "routing.stop_when 'state.done': 'state.done' is undefined"
    assert all(r["status"] == "failed" and r["error"] == error for r in records)
    assert all([t["role"] for t in r["history"]] == ["a"] for r in records)
    assert all(r["history"][0]["error"] == error for r in records)
