"""The worker directory as seen by one worker: who hosts which role, how loaded.

Built from the registry's ``workers`` entries (cached scans), plus what this
worker has sent each peer since it last read that peer's advertised load, so a
burst of hand-offs spreads out instead of all landing on the peer that looked
idlest a second ago.
"""

from __future__ import annotations

import random
from typing import Any

from matrixhpc.registry import EXITED, FINISHED, WORKERS, Registry

KIND = WORKERS
AVOIDED = 1e6  # added to an avoided peer's load score: chosen only when nobody else can


class PeerDirectory:
    def __init__(self, registry: Registry, me: str) -> None:
        self.registry = registry
        self.me = me
        self._entries: dict[str, dict[str, Any]] = {}
        self._sent: dict[str, int] = {}
        self._avoid: dict[str, float] = {}  # peer -> until when it is picked only as a last resort

    def refresh(self, *, fresh: bool = False) -> None:
        entries = self.registry.entries(KIND, fresh=fresh)
        if entries is not self._entries:
            for name, entry in entries.items():
                if self._entries.get(name, {}).get("heartbeat") != entry.get("heartbeat"):
                    self._sent[name] = 0
            self._entries = entries

    def address_of(self, worker: str) -> str | None:
        """The live address of a worker; None if it is gone or has exited."""
        entry = self._entries.get(worker)
        if entry is None or entry.get("state") == "exited":
            return None
        address = entry.get("address")
        return address if isinstance(address, str) else None

    def pick(self, role: str, prefer: str | None = None) -> tuple[str, str] | None:
        """(name, address) of the least-loaded live peer hosting ``role``; ``prefer`` (the
        peer holding the task's sandbox) when it is live, hosts the role and is not avoided."""
        best: tuple[float, float, str, str] | None = None
        now = self.registry.clock()
        if prefer is not None and prefer != self.me:
            entry = self._entries.get(prefer)
            if (
                entry is not None
                and role in entry.get("roles", ())
                and entry.get("state") != "exited"
                and self._avoid.get(prefer, 0.0) <= now
            ):
                self._sent[prefer] = self._sent.get(prefer, 0) + 1
                return prefer, entry["address"]
        for name, entry in self._entries.items():
            if name == self.me or role not in entry.get("roles", ()):
                continue
            if entry.get("state") == "exited":
                continue
            load = entry.get("active", 0) + entry.get("queued", 0) + self._sent.get(name, 0)
            score = load / max(1, entry.get("max_active", 1))
            if self._avoid.get(name, 0.0) > now:
                score += AVOIDED
            candidate = (score, random.random(), name, entry["address"])
            if best is None or candidate < best:
                best = candidate
        if best is None:
            return None
        self._sent[best[2]] = self._sent.get(best[2], 0) + 1
        return best[2], best[3]

    def avoid(self, name: str, seconds: float) -> None:
        """A peer that left a hand-off unacknowledged: prefer any other for ``seconds``
        (it may be stopped, or dead with a registry entry that has not expired yet)."""
        self._avoid[name] = self.registry.clock() + seconds

    def hosts(self, role: str) -> bool:
        """Whether some other live worker hosts ``role`` (somewhere to shed load to)."""
        return any(
            name != self.me and role in e.get("roles", ()) and e.get("state") != "exited"
            for name, e in self._entries.items()
        )

    def finished(self, expected: int) -> bool:
        """True once all ``expected`` workers have declared their own tasks written
        (markers: a look is one ``stat`` while nothing changes)."""
        return len(self.registry.marked(FINISHED)) >= expected

    def declare_finished(self) -> None:
        """This worker's own tasks are all written (permanent, read by every peer)."""
        self.registry.mark(FINISHED, self.me)

    def declare_exited(self) -> None:
        """The whole run finished and this worker leaves: a marker for those who wait
        for the end (servers, launchers), and its entry removed (a removal is seen in
        the listing, without a read by each peer)."""
        self.registry.mark(EXITED, self.me)
        self.registry.deregister(KIND, self.me)
