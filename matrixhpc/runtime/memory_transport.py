"""An in-process transport: the worker's inbox and outbox as queues in one event loop.

Several workers then run in one process (a unit test, in milliseconds), and the test
decides what the network does to their frames:

- :meth:`MemoryNetwork.drop` loses frames (an ACK lost to a crash);
- :meth:`MemoryNetwork.delay` delivers them later, on the network's clock;
- :meth:`MemoryNetwork.hold` keeps them until released, in order (a stopped process:
  its socket buffer fills, nothing is read or answered);
- :meth:`MemoryNetwork.cut` makes an address unreachable: sends to it fail at once,
  as a ZeroMQ send to a peer with no live connection does after its wait.

Sends to a closed inbox fail the same way. Frames are the same bytes the ZeroMQ
transport carries (see :mod:`matrixhpc.runtime.ports` for the shared interface).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from matrixhpc.runtime.clock import Clock, SystemClock


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame in transit: who sent it, where to, and its bytes."""

    sender: str
    address: str
    data: bytes

    @property
    def kind(self) -> int:
        """The frame's type byte (a :class:`matrixhpc.codec.FrameType`), -1 if empty."""
        return self.data[0] if self.data else -1


Match = Callable[[Frame], bool]


@dataclass(eq=False)
class _Rule:
    match: Match
    left: int | None  # frames still to affect; None: every matching frame
    action: Callable[[Frame], None]

    def claims(self, frame: Frame) -> bool:
        if self.left == 0 or not self.match(frame):
            return False
        if self.left is not None:
            self.left -= 1
        return True


@dataclass(eq=False)
class Hold:
    """Frames kept back by :meth:`MemoryNetwork.hold` until :meth:`release`."""

    network: MemoryNetwork
    frames: list[Frame] = field(default_factory=list)
    rule: _Rule | None = None

    def release(self) -> int:
        """Stop holding and deliver what was held, in order; returns how many."""
        if self.rule is not None:
            self.network.forget(self.rule)
        frames, self.frames = self.frames, []
        for frame in frames:
            self.network.deliver(frame)
        return len(frames)


class MemoryInbox:
    """One worker's inbox: an address on the network and a queue of frames."""

    def __init__(self, network: MemoryNetwork, address: str) -> None:
        self.network = network
        self.address = address
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def recv(self) -> bytes:
        return await self.queue.get()

    def close(self) -> None:
        self.network.detach(self)


class MemoryOutbox:
    """One worker's outbox; ``sender`` names it in the frames the network sees."""

    def __init__(self, network: MemoryNetwork, sender: str) -> None:
        self.network = network
        self.sender = sender
        self.closed = False

    async def send(self, address: str, frame: bytes, wait: float = 0.0) -> bool:
        """Hand ``frame`` to the network; False (at once) if it cannot reach ``address``."""
        del wait  # the interface's: nothing here ever waits
        if self.closed:
            return False
        return self.network.send(Frame(self.sender, address, frame))

    def close(self) -> None:
        self.closed = True


class MemoryNetwork:
    """The inboxes of one test's workers and what happens to frames between them."""

    def __init__(self, clock: Clock | None = None, hwm: int = 100_000) -> None:
        self.clock: Clock = clock or SystemClock()
        self.hwm = hwm
        self.inboxes: dict[str, MemoryInbox] = {}
        self.log: list[Frame] = []  # every frame accepted for delivery, in send order
        self.refused = 0  # sends that failed: unreachable, closed or full
        self.dropped = 0
        self._rules: list[_Rule] = []
        self._cut: set[str] = set()
        self._ids = itertools.count()
        self._later: set[asyncio.Task[None]] = set()

    def inbox(self, name: str = "inbox") -> MemoryInbox:
        """A new inbox at a fresh address (a restarted worker gets a new one)."""
        box = MemoryInbox(self, f"mem://{name}/{next(self._ids)}")
        self.inboxes[box.address] = box
        return box

    def outbox(self, sender: str) -> MemoryOutbox:
        return MemoryOutbox(self, sender)

    def detach(self, inbox: MemoryInbox) -> None:
        self.inboxes.pop(inbox.address, None)

    # ------------------------------------------------------------- faults

    def drop(self, match: Match, count: int | None = 1) -> None:
        """Lose the next ``count`` matching frames (None: all, from now on)."""
        self._rules.append(_Rule(match, count, self._lose))

    def delay(self, match: Match, seconds: float, count: int | None = 1) -> None:
        """Deliver the next ``count`` matching frames ``seconds`` later (network clock)."""

        def later(frame: Frame) -> None:
            due = self.clock.monotonic() + seconds  # from the send, not from the job's start
            job = asyncio.get_running_loop().create_task(self._deliver_at(frame, due))
            self._later.add(job)
            job.add_done_callback(self._later.discard)

        self._rules.append(_Rule(match, count, later))

    def hold(self, match: Match) -> Hold:
        """Keep every matching frame until the returned hold is released."""
        hold = Hold(self)
        hold.rule = _Rule(match, None, hold.frames.append)
        self._rules.append(hold.rule)
        return hold

    def forget(self, rule: _Rule) -> None:
        if rule in self._rules:
            self._rules.remove(rule)

    def cut(self, address: str) -> None:
        """Make ``address`` unreachable: every send to it fails until :meth:`mend`."""
        self._cut.add(address)

    def mend(self, address: str) -> None:
        self._cut.discard(address)

    # ------------------------------------------------------------- delivery

    def send(self, frame: Frame) -> bool:
        box = self.inboxes.get(frame.address)
        if box is None or frame.address in self._cut or box.queue.qsize() >= self.hwm:
            self.refused += 1
            return False
        self.log.append(frame)
        rule = next((r for r in self._rules if r.claims(frame)), None)
        if rule is None:
            box.queue.put_nowait(frame.data)
        else:
            rule.action(frame)
        return True

    def deliver(self, frame: Frame) -> bool:
        """Put a frame in its inbox now, past every rule; False if the inbox is gone
        (a frame held for a process that died meanwhile is lost with it)."""
        box = self.inboxes.get(frame.address)
        if box is None:
            self.dropped += 1
            return False
        box.queue.put_nowait(frame.data)
        return True

    def _lose(self, _frame: Frame) -> None:
        self.dropped += 1

    async def _deliver_at(self, frame: Frame, due: float) -> None:
        await self.clock.sleep(due - self.clock.monotonic())
        self.deliver(frame)
