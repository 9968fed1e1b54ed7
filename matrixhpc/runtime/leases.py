"""Leases, both ways: renewing those of the tasks held here at their origins, and
re-issuing this origin's tasks that nobody has reported moving within their lease.

One loop does both, because both must notice the same thing: a process that was
stopped or suspended (SIGSTOP, a frozen node) finds the renewals sent to it meanwhile
still unread in its inbox, so it may judge nobody's silence until it has read them:
every lease starts over instead.
"""

from __future__ import annotations

from collections.abc import Callable

from matrixhpc.codec import encode_renew
from matrixhpc.runtime.clock import Clock
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.ports import FrameOutbox

RENEW_EVERY = 30.0  # seconds between lease renewals, at most (a quarter lease when shorter)
CHECK_EVERY = 5.0  # seconds between lease checks, at most (a quarter lease when shorter)


def renew_interval(lease: float) -> float:
    """How often a worker tells origins which of their tasks it is driving."""
    return min(lease / 4, RENEW_EVERY)


class Leases:
    def __init__(
        self,
        me: str,
        lease: float,
        book: OriginBook,
        holdings: Holdings,
        peers: PeerDirectory,
        outbox: FrameOutbox,
        reissue: Callable[[str], None],
        clock: Clock,
    ) -> None:
        self.me = me
        self.lease = lease
        self.book = book
        self.holdings = holdings
        self.peers = peers
        self.outbox = outbox
        self.reissue = reissue
        self.clock = clock
        self.renewed = 0  # leases renewed at other origins

    async def run(self) -> None:
        clock, lease = self.clock, self.lease
        renewed_at = clock.monotonic()
        period = min(CHECK_EVERY, lease / 4)
        while True:
            slept = clock.monotonic()
            await clock.sleep(period)
            if clock.monotonic() - slept > period + lease / 2:
                self.book.hear_all()  # this process was paused: judge nobody's silence yet
            if clock.monotonic() - renewed_at >= renew_interval(lease):
                renewed_at = clock.monotonic()
                await self.renew()
            for expired in self.book.expired(lease, self.holdings.tasks):
                self.reissue(expired)

    async def renew(self) -> None:
        """One CONTROL frame per origin listing the tasks that are moving here."""
        by_origin: dict[str, list[tuple[str, int, int]]] = {}
        for task in self.holdings.foreign(self.me):
            by_origin.setdefault(task.origin, []).append((task.id, task.token, task.attempt))
        for origin, leases in by_origin.items():
            address = self.peers.address_of(origin)
            if address is not None and await self.outbox.send(
                address, encode_renew(self.me, leases)
            ):
                self.renewed += len(leases)
