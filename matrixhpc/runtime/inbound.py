"""The receiving side of the protocol between workers: TASK, RETURN, ACK, CONTROL.

- TASK: a hand-off. Journal it, commit, then ACK (so a hand-off can never be lost
  between two workers), then step it. A copy seen before, one that adds nothing to
  the copy held, or one of this origin's own tasks it can never write is dropped and
  ACKed again (its sender lost the first ACK).
- RETURN: a finished task back at its origin: written once, committed, then ACKed.
- ACK: a peer has taken a hand-off of ours; we no longer hold that copy.
- CONTROL RENEW: a peer is driving some of our tasks: their leases start over.

A frame that does not decode is counted and dropped; nothing a peer sends can stop
the receive loop. Each TASK and RETURN is handled as a job of its own, so a slow
commit never holds up the inbox.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from matrixhpc.codec import CodecError, Control, FrameType, decode, encode_ack
from matrixhpc.runtime.admitter import Admitter
from matrixhpc.runtime.handoff import Handoffs
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.liveness import Liveness
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.ports import FrameInbox, FrameOutbox
from matrixhpc.runtime.recovery import Key, key_of, task_record
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.task import Task

Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class Inbound:
    def __init__(
        self,
        me: str,
        inbox: FrameInbox,
        outbox: FrameOutbox,
        peers: PeerDirectory,
        journal: Journal,
        holdings: Holdings,
        handoffs: Handoffs,
        admitter: Admitter,
        liveness: Liveness,
        stats: WorkerStats,
        spawn: Spawn,
        drive: Callable[[Task], Awaitable[None]],
    ) -> None:
        self.me = me
        self.inbox = inbox
        self.outbox = outbox
        self.peers = peers
        self.journal = journal
        self.holdings = holdings
        self.handoffs = handoffs
        self.admitter = admitter
        self.liveness = liveness
        self.stats = stats
        self.spawn = spawn  # run a job under the worker's supervision
        self.drive = drive  # step a task taken here, then dispatch it

    async def run(self) -> None:
        while True:
            frame = await self.inbox.recv()
            try:
                kind, body = decode(frame)
            except CodecError:
                self.stats.dropped_frames += 1
                continue
            self.handle(kind, body)

    def handle(self, kind: FrameType, body: Any) -> None:
        """One decoded frame (see :func:`matrixhpc.codec.decode` for the bodies)."""
        if kind is FrameType.TASK:
            self.spawn(self.accept(*body), "accept")
        elif kind is FrameType.RETURN:
            self.spawn(self.accept_return(*body), "accept return")
        elif kind is FrameType.ACK:
            task = self.handoffs.acked(body)
            if task is not None:
                self.holdings.release(task)
        elif body[1] is Control.RENEW:
            for lease in body[2]:
                self.admitter.book.renew(*lease)

    async def accept(self, sender: str, task: Task) -> None:
        """Take a hand-off: journal it, commit, then ACK (so it can never be lost)."""
        key = key_of(task)
        stale = self.admitter.stale_here(task)
        self.admitter.book.stale += stale
        if stale or key in self.holdings.seen or self.holdings.surplus(task):
            self.stats.duplicates += 1
            await self.journal.commit()
            await self._ack(sender, key)
            return
        self.holdings.seen.add(key)
        self.stats.received += 1
        with self.liveness.drive(task.id):
            self.holdings.take(task)
            self.journal.append(task_record(task))
            await self.journal.commit()
            await self._ack(sender, key)
        await self.drive(task)

    async def accept_return(self, sender: str, task: Task) -> None:
        """A finished task back at its origin: write it once, commit, then ACK."""
        if task.origin != self.me:
            self.stats.dropped_frames += 1
        else:
            self.admitter.take_return(task)
        await self.journal.commit()
        await self._ack(sender, key_of(task))

    async def _ack(self, sender: str, key: Key) -> None:
        address = self.peers.address_of(sender)
        if address is None:
            self.peers.refresh(fresh=True)
            address = self.peers.address_of(sender)
        if address is not None:
            await self.outbox.send(address, encode_ack(*key))
