"""The sender's side of at-least-once hand-offs between workers.

A task handed to a peer (or returned to its origin) stays journaled and in memory
until the receiver ACKs it; the receiver ACKs only after journaling it. Without
an ACK the frame is resent after ``ack_timeout`` to the peer's current address
(it may have restarted elsewhere); a TASK whose peer has left the registry is
re-routed instead. Receivers drop duplicates by (id, token, attempt, hop).

The watcher is what drives every unacknowledged task, so it must never stop or
block: an ACK may remove an entry while a sweep awaits a send (each entry is checked
again before it is touched), re-routing runs as its own job, and one unreachable
address costs a sweep one bounded send, not one per task queued for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from matrixhpc.codec import FrameType, encode_task
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.ports import FrameOutbox
from matrixhpc.runtime.recovery import Key, Pending, acked_record, sent_record
from matrixhpc.task import Task

Reroute = Callable[[Task], None]

REROUTE_AFTER = 2  # resends of a TASK without an ACK before it goes to another peer
AVOID_FOR = 60.0  # seconds a peer that stayed silent is picked only when no other can


class Handoffs:
    def __init__(
        self,
        me: str,
        journal: Journal,
        outbox: FrameOutbox,
        peers: PeerDirectory,
        ack_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.me = me
        self.journal = journal
        self.outbox = outbox
        self.peers = peers
        self.ack_timeout = ack_timeout
        self.clock = clock
        self.sleep = sleep
        self.pending: dict[str, Pending] = {}
        self.resent = 0
        self.rerouted = 0

    async def send(self, task: Task, peer: str, kind: FrameType) -> None:
        pending = Pending(task, peer, int(kind), self.clock())
        self.pending[task.id] = pending
        self.journal.append(sent_record(pending))
        address = self.peers.address_of(peer)
        sent = address is not None and await self.outbox.send(
            address, encode_task(task, kind, self.me)
        )
        if not sent:  # nobody reachable yet: the watcher retries within a second or so
            self._retry_soon(pending)

    def acked(self, key: Key) -> Task | None:
        """The receiver has the task: forget it (returns it, or None for a stray ACK)."""
        pending = self.pending.get(key[0])
        if pending is None or pending.key != key:
            return None
        del self.pending[key[0]]
        self.journal.append(acked_record(key))
        return pending.task

    def adopt(self, pending: dict[str, Pending]) -> None:
        """Hand-offs still unacknowledged when the worker last stopped: resend them."""
        for p in pending.values():
            p.sent_at = self.clock() - self.ack_timeout
        self.pending.update(pending)

    def due(self) -> list[Pending]:
        now = self.clock()
        return [p for p in self.pending.values() if now - p.sent_at > self.ack_timeout]

    async def watch(self, reroute: Reroute) -> None:
        while True:
            await self.sleep(min(1.0, self.ack_timeout / 4))
            await self.sweep(reroute)

    async def sweep(self, reroute: Reroute) -> None:
        """Resend (or re-route) every hand-off whose ACK is overdue."""
        unreachable: set[str] = set()
        for pending in self.due():
            if self.pending.get(pending.task.id) is not pending:
                continue  # ACKed (or replaced) while this sweep was awaiting a send
            await self._retry(pending, reroute, unreachable)

    async def _retry(self, pending: Pending, reroute: Reroute, unreachable: set[str]) -> None:
        address = self.peers.address_of(pending.peer)
        pending.tries += 1
        silent = pending.tries > REROUTE_AFTER
        if pending.kind == FrameType.TASK and (address is None or silent):
            # the peer is gone, or silent while its registry entry still looks alive (a
            # stopped process, a dead node whose entry has not expired): someone else
            # takes it; a copy the slow peer finishes anyway is dropped as a duplicate
            if address is not None:
                self.peers.avoid(pending.peer, AVOID_FOR)
            del self.pending[pending.task.id]
            self.rerouted += 1
            reroute(pending.task)  # starts a job: a long wait for a peer must not block us
            return
        pending.sent_at = self.clock()
        if address is None or address in unreachable:
            self._retry_soon(pending)
            return
        self.resent += 1
        frame = encode_task(pending.task, FrameType(pending.kind), self.me)
        if not await self.outbox.send(address, frame):
            unreachable.add(address)
            self._retry_soon(pending)

    def _retry_soon(self, pending: Pending) -> None:
        pending.sent_at = self.clock() - self.ack_timeout + 1.0
