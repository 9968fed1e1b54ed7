"""At-least-once hand-offs over real ZeroMQ sockets and a real file registry."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import zmq
import zmq.asyncio

from matrixhpc.codec import FrameType, decode
from matrixhpc.registry import Registry
from matrixhpc.runtime.handoff import REROUTE_AFTER, Handoffs
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.peers import KIND, PeerDirectory
from matrixhpc.runtime.recovery import ACKED, SENT, Pending, recover, sent_record, task_record
from matrixhpc.runtime.transport import Inbox, Outbox
from matrixhpc.task import Task

Reroute = Callable[[Task], None]


class Net:
    """Real sockets, registry and journals for one test; everything closed at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.ctx = zmq.asyncio.Context()
        # fresh_floor=0: each test re-reads the registry right after changing it
        self.registry = Registry(tmp_path / "registry", scan_interval=60.0, fresh_floor=0.0)
        self.inboxes: list[Inbox] = []
        self.outboxes: list[Outbox] = []
        self.journals: list[Journal] = []
        self.watchers: list[asyncio.Task[None]] = []

    def inbox(self) -> Inbox:
        self.inboxes.append(Inbox(self.ctx))
        return self.inboxes[-1]

    def register(self, name: str, address: str, **entry: Any) -> None:
        ttl = entry.pop("ttl", -1.0)
        data = {"address": address, "roles": ["any"], "state": "running", **entry}
        self.registry.register(KIND, name, data, ttl=ttl)

    def handoffs(self, me: str = "w0", ack_timeout: float = 5.0) -> Handoffs:
        journal = Journal(self.tmp_path / "journal" / me, "off", commit_interval=0.001)
        journal.open()
        self.journals.append(journal)
        self.outboxes.append(Outbox(self.ctx))
        peers = PeerDirectory(self.registry, me)
        peers.refresh(fresh=True)
        return Handoffs(me, journal, self.outboxes[-1], peers, ack_timeout)

    def watch(self, handoffs: Handoffs, reroute: Reroute) -> None:
        self.watchers.append(asyncio.create_task(handoffs.watch(reroute)))

    async def journaled(self, handoffs: Handoffs, count: int) -> list[list[Any]]:
        """The records on disk once ``count`` of them are written."""
        journal = handoffs.journal
        await journal.commit()  # returns once the group being written has landed too
        assert journal.stats["records"] >= count
        return list(Journal(journal.dir).replay())

    async def close(self) -> None:
        for watcher in self.watchers:
            watcher.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)
        await asyncio.sleep(0.02)  # let a group in flight land: close() does not wait for it
        for journal in self.journals:
            await journal.close()
        for outbox in self.outboxes:
            outbox.close()
        for inbox in self.inboxes:
            inbox.close()
        self.ctx.destroy(linger=0)


@pytest_asyncio.fixture
async def net(tmp_path: Path) -> AsyncIterator[Net]:
    n = Net(tmp_path)
    yield n
    await n.close()


async def _recv(inbox: Inbox, timeout: float = 5.0) -> tuple[FrameType, Any]:
    return decode(await asyncio.wait_for(inbox.recv(), timeout))


async def _quiet(inbox: Inbox, ms: int) -> bool:
    """True if nothing arrives at ``inbox`` within ``ms`` milliseconds."""
    return not await inbox.sock.poll(ms)


def _task(task_id: str = "t1", hop: int = 3, origin: str = "w0") -> Task:
    return Task(id=task_id, seed=1, row={"q": "¿?"}, origin=origin, next="b", hop=hop, token=77)


def _never(task: Task) -> None:
    raise AssertionError(f"unexpected re-route of {task.id}")


# ------------------------------------------------------------- send / ack


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [FrameType.TASK, FrameType.RETURN])
async def test_send_journals_sent_and_delivers(net: Net, kind: FrameType) -> None:
    peer = net.inbox()
    net.register("w1", peer.address)
    h = net.handoffs("w0")
    task = _task()
    await h.send(task, "w1", kind)
    got_kind, (sender, got) = await _recv(peer)
    assert got_kind is kind
    assert sender == "w0"
    assert got == task
    pending = h.pending["t1"]
    assert (pending.key, pending.peer, pending.kind, pending.task) == (
        ("t1", 77, 0, 3),
        "w1",
        kind,
        task,
    )
    assert await net.journaled(h, 1) == [[SENT, "t1", 0, 3, "w1", int(kind)]]


@pytest.mark.asyncio
async def test_ack_with_the_right_key_releases(net: Net) -> None:
    peer = net.inbox()
    net.register("w1", peer.address)
    h = net.handoffs("w0")
    task = _task()
    await h.send(task, "w1", FrameType.TASK)
    await _recv(peer)
    for wrong in [("t1", 77, 0, 2), ("t1", 77, 1, 3), ("t2", 77, 0, 3), ("t1", 78, 0, 3)]:
        assert h.acked(wrong) is None
    assert set(h.pending) == {"t1"}
    assert h.acked(("t1", 77, 0, 3)) is task
    assert h.pending == {}
    assert h.acked(("t1", 77, 0, 3)) is None  # a second ACK is a stray
    assert await net.journaled(h, 2) == [
        [SENT, "t1", 0, 3, "w1", 1],
        [ACKED, "t1", 77, 0, 3],
    ]


@pytest.mark.asyncio
async def test_an_acked_hand_off_is_not_resent(net: Net) -> None:
    peer = net.inbox()
    net.register("w1", peer.address)
    h = net.handoffs("w0", ack_timeout=0.2)
    net.watch(h, _never)
    await h.send(_task(), "w1", FrameType.TASK)
    await _recv(peer)
    assert h.acked(("t1", 77, 0, 3)) is not None
    assert await _quiet(peer, 700)  # > 3 ack timeouts
    assert h.resent == 0


# ------------------------------------------------------------- the watcher


@pytest.mark.asyncio
async def test_no_ack_resends_to_the_peers_current_address(net: Net) -> None:
    old = net.inbox()
    net.register("w1", old.address)
    h = net.handoffs("w0", ack_timeout=0.3)
    task = _task()
    sent_at = time.monotonic()
    await h.send(task, "w1", FrameType.TASK)
    await _recv(old)  # delivered, but never ACKed: the peer died with it
    new = net.inbox()  # the peer restarted elsewhere
    net.register("w1", new.address)
    h.peers.refresh(fresh=True)
    net.watch(h, _never)
    kind, (sender, got) = await _recv(new)
    assert time.monotonic() - sent_at >= 0.3  # not before the ACK timeout
    assert kind is FrameType.TASK
    assert sender == "w0"
    assert got == task
    assert h.resent >= 1
    assert "t1" in h.pending
    assert await _quiet(old, 200)  # the old address gets nothing more
    assert h.acked(("t1", 77, 0, 3)) is task
    resent = h.resent
    await asyncio.sleep(0.7)
    assert h.resent == resent
    records = await net.journaled(h, 2)
    assert records[0] == [SENT, "t1", 0, 3, "w1", 1]
    assert records[-1] == [ACKED, "t1", 77, 0, 3]
    assert [r[0] for r in records].count(SENT) == 1  # a resend is not a new hand-off


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["deregistered", "exited", "expired"])
async def test_a_task_whose_peer_left_is_rerouted(net: Net, how: str) -> None:
    peer = net.inbox()
    net.register("w1", peer.address, ttl=0.3 if how == "expired" else -1.0)
    h = net.handoffs("w0", ack_timeout=0.3)
    task = _task()
    await h.send(task, "w1", FrameType.TASK)
    await _recv(peer)
    if how == "deregistered":
        net.registry.deregister(KIND, "w1")
    elif how == "exited":
        net.register("w1", peer.address, state="exited")
    else:
        await asyncio.sleep(0.4)
    h.peers.refresh(fresh=True)
    assert h.peers.address_of("w1") is None
    rerouted: asyncio.Queue[Task] = asyncio.Queue()
    net.watch(h, rerouted.put_nowait)
    got = await asyncio.wait_for(rerouted.get(), 5)
    assert got is task
    assert h.rerouted == 1
    assert h.resent == 0
    assert h.pending == {}
    assert await _quiet(peer, 100)


@pytest.mark.asyncio
async def test_a_return_whose_origin_is_absent_is_kept(net: Net) -> None:
    origin = net.inbox()
    net.register("w9", origin.address)
    h = net.handoffs("w1", ack_timeout=0.25)
    task = _task(origin="w9")
    await h.send(task, "w9", FrameType.RETURN)
    await _recv(origin)
    net.registry.deregister(KIND, "w9")
    h.peers.refresh(fresh=True)
    calls: list[Task] = []

    def reroute(t: Task) -> None:
        calls.append(t)

    net.watch(h, reroute)
    await asyncio.sleep(1.0)  # four ACK timeouts: only the origin can take a return
    assert calls == []
    assert h.rerouted == 0
    assert set(h.pending) == {"t1"}
    back = net.inbox()  # the origin restarts (same identity, new address)
    net.register("w9", back.address)
    h.peers.refresh(fresh=True)
    kind, (sender, got) = await _recv(back)
    assert kind is FrameType.RETURN
    assert sender == "w1"
    assert got == task
    assert calls == []


@pytest.mark.asyncio
async def test_send_to_an_unknown_peer_is_retried_within_about_a_second(net: Net) -> None:
    h = net.handoffs("w0", ack_timeout=10.0)
    task = _task()
    start = time.monotonic()
    await h.send(task, "w5", FrameType.TASK)  # nobody of that name (yet)
    assert "t1" in h.pending
    rerouted: asyncio.Queue[Task] = asyncio.Queue()
    net.watch(h, rerouted.put_nowait)
    assert await asyncio.wait_for(rerouted.get(), 5) is task
    assert time.monotonic() - start < 3.0  # not after the 10 s ACK timeout


# ------------------------------------------------------------- after a restart


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", [FrameType.TASK, FrameType.RETURN])
async def test_adopt_resends_recovered_hand_offs(net: Net, kind: FrameType) -> None:
    peer = net.inbox()
    net.register("w1", peer.address)
    task = _task(hop=4)
    # what the previous incarnation journaled: it holds the task and sent it, no ACK
    records = [task_record(task), sent_record(Pending(task, "w1", int(kind)))]
    state = recover(records)
    assert set(state.pending) == {"t1"}
    state.pending["t1"].sent_at = time.monotonic()  # as if just sent: adopt must reset it
    h = net.handoffs("w0", ack_timeout=2.0)
    h.adopt(state.pending)
    assert h.pending["t1"].sent_at <= time.monotonic() - 2.0  # due at once
    start = time.monotonic()
    net.watch(h, _never)
    got_kind, (sender, got) = await _recv(peer)
    assert time.monotonic() - start < 1.5  # at the watcher's first pass, not after 2 s
    assert got_kind is kind
    assert sender == "w0"
    assert got == task
    assert h.resent == 1
    assert h.acked(("t1", 77, 0, 4)) is state.held["t1"]
    assert h.pending == {}


# ------------------------------------------------------------- the watcher never stops


class CountingOutbox(Outbox):
    """A real outbox that counts the sends it is asked for."""

    sends: list[str]

    async def send(self, address: str, frame: bytes, wait: float = 0.3) -> bool:
        self.sends.append(address)
        return await super().send(address, frame, wait)


def _dead_address() -> str:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.asyncio
async def test_an_ack_during_a_sweep_does_not_kill_the_watcher(net: Net) -> None:
    """A sweep awaits a send to a dead address; meanwhile the ACK of another overdue
    hand-off (whose peer has left) arrives. The sweep must skip it, not crash."""
    net.register("dead", _dead_address())
    net.register("gone", net.inbox().address)
    h = net.handoffs("w0", ack_timeout=0.2)
    slow, acked = _task("t1"), _task("t2")
    await h.send(slow, "dead", FrameType.TASK)
    await h.send(acked, "gone", FrameType.TASK)
    net.registry.deregister(KIND, "gone")
    h.peers.refresh(fresh=True)
    for p in h.pending.values():
        p.sent_at -= 1.0  # both overdue
    rerouted: list[Task] = []
    sweep = asyncio.create_task(h.sweep(rerouted.append))
    await asyncio.sleep(0.05)  # the sweep is now waiting on the dead address
    assert h.acked(("t2", 77, 0, 3)) is acked
    await asyncio.wait_for(sweep, 10)  # no KeyError
    assert rerouted == []
    assert set(h.pending) == {"t1"}


@pytest.mark.asyncio
async def test_a_dead_address_costs_one_send_per_sweep(net: Net) -> None:
    address = _dead_address()
    net.register("dead", address)
    h = net.handoffs("w0", ack_timeout=0.2)
    outbox = CountingOutbox(net.ctx)
    outbox.sends = []
    net.outboxes.append(outbox)
    h.outbox = outbox
    for i in range(5):
        await h.send(_task(f"t{i}"), "dead", FrameType.TASK)
    assert outbox.sends == [address] * 5  # each first send is tried
    for p in h.pending.values():
        p.sent_at -= 1.0
    outbox.sends.clear()
    await asyncio.wait_for(h.sweep(_never), 10)
    assert outbox.sends == [address]  # not five bounded waits in a row
    assert len(h.pending) == 5
    assert h.resent == 1


@pytest.mark.asyncio
async def test_a_task_a_live_looking_peer_never_acks_goes_to_another(net: Net) -> None:
    """A stopped peer (or a dead node whose entry has not expired) keeps looking alive:
    after a few unanswered resends the task is re-routed and the peer avoided."""
    silent = net.inbox()
    net.register("w1", silent.address)
    h = net.handoffs("w0", ack_timeout=5.0)
    task = _task()
    await h.send(task, "w1", FrameType.TASK)
    rerouted: list[Task] = []
    for _ in range(REROUTE_AFTER):  # each ACK timeout: one more resend to the same peer
        h.pending["t1"].sent_at -= 10.0
        await h.sweep(rerouted.append)
        assert rerouted == []
    h.pending["t1"].sent_at -= 10.0
    await h.sweep(rerouted.append)
    assert rerouted == [task]
    assert h.pending == {}
    assert h.resent == REROUTE_AFTER
    assert h.rerouted == 1
    net.register("w2", net.inbox().address)
    h.peers.refresh(fresh=True)
    assert h.peers.pick("any") == ("w2", net.registry.entries(KIND)["w2"]["address"])


@pytest.mark.asyncio
async def test_a_return_is_never_rerouted_however_long_its_origin_is_silent(net: Net) -> None:
    origin = net.inbox()
    net.register("w9", origin.address)
    h = net.handoffs("w1", ack_timeout=5.0)
    await h.send(_task(origin="w9"), "w9", FrameType.RETURN)
    for _ in range(REROUTE_AFTER + 3):
        h.pending["t1"].sent_at -= 10.0
        await h.sweep(_never)
    assert set(h.pending) == {"t1"}
    assert h.rerouted == 0
