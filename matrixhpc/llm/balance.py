"""Which replica gets the next request: load and health per replica, as one process sees them.

* Least-outstanding balancing (in flight + queued in this client) rather than
  round-robin: a slow or overloaded replica naturally receives fewer requests, and
  a queue never builds in front of one replica while another idles.
* Optional consistent hashing on a sticky key so that the turns of one dialogue land
  on the same replica (prefix-cache reuse), and only the keys of a vanished replica
  move when the set changes.
* With ``queue_metrics`` on, a replica's load also counts the requests its server
  reports holding for other processes (:mod:`matrixhpc.llm.queue_depth`).
* A replica that refuses or resets connections is benched for a cooldown that
  doubles per repeated outage; a retry prefers a replica not yet tried.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import random
import time
from collections.abc import Iterator, Sequence
from typing import Any

from .queue_depth import metrics_url
from .types import ClientPolicy, ReplicaInfo

VNODES = 64  # virtual nodes per replica on the consistent-hash ring
_TRIED_PENALTY = 1 << 40  # makes an already-tried replica lose every least-load comparison


class Replica:
    """Load and health of one replica, as seen by this process.

    ``outstanding`` counts requests assigned here (queued on the semaphore or in
    flight); it is incremented at pick time, before any await, so thousands of
    concurrent picks see each other and spread out.
    """

    __slots__ = (
        "down_until",
        "endpoint",
        "external",
        "failures",
        "headers",
        "inflight",
        "info",
        "limit",
        "metrics_url",
        "name",
        "outstanding",
        "requests",
        "sem",
        "streak",
    )

    def __init__(self, info: ReplicaInfo, policy: ClientPolicy) -> None:
        self.info = info
        self.name = info.name
        self.endpoint = info.url.rstrip("/") + "/chat/completions"
        self.metrics_url = metrics_url(info.url)
        self.headers = {"Content-Type": "application/json"}
        if info.api_key:
            self.headers["Authorization"] = f"Bearer {info.api_key}"
        limit = policy.max_concurrency
        if info.max_concurrency is not None:
            limit = min(limit, info.max_concurrency)
        self.limit = max(1, limit)
        self.sem = asyncio.Semaphore(self.limit)
        self.outstanding = 0
        self.inflight = 0
        self.external = 0  # requests the server holds for others (queue metrics, opt-in)
        self.down_until = 0.0  # monotonic time until which the replica gets no requests
        self.streak = 0  # consecutive "dead" failures; doubles the cooldown
        self.requests = 0
        self.failures = 0

    def bench(self, now: float, base: float, cap: float) -> float:
        """Start (or extend) a cooldown; concurrent failures of one outage count once."""
        if self.down_until > now:
            return self.down_until - now
        self.streak += 1
        span = min(cap, base * 2.0 ** (self.streak - 1))
        self.down_until = now + span
        return span

    def stats(self, now: float) -> dict[str, Any]:
        return {
            "outstanding": self.outstanding,
            "inflight": self.inflight,
            "external": self.external,
            "limit": self.limit,
            "requests": self.requests,
            "failures": self.failures,
            "cooldown": max(0.0, self.down_until - now),
        }


def _hash64(text: str) -> int:
    """A hash that is the same in every process (unlike ``hash()``), so all clients agree."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing over replica *names*: a restarted replica keeps its keys."""

    __slots__ = ("_owners", "_points")

    def __init__(self, replicas: Sequence[Replica], vnodes: int = VNODES) -> None:
        pts = sorted(
            (_hash64(f"{rep.name}#{i}"), idx)
            for idx, rep in enumerate(replicas)
            for i in range(vnodes)
        )
        self._points = [p for p, _ in pts]
        self._owners = [replicas[i] for _, i in pts]

    def walk(self, key: str) -> Iterator[Replica]:
        """Replicas clockwise from the key's point; the first one is the key's owner."""
        n = len(self._points)
        start = bisect.bisect(self._points, _hash64(key))
        for j in range(n):
            yield self._owners[(start + j) % n]


class Service:
    """The replicas of one service as last listed by the source, and how to choose one."""

    def __init__(self, name: str, policy: ClientPolicy) -> None:
        self.name = name
        self.policy = policy
        self.infos: list[ReplicaInfo] = []
        self.live: list[Replica] = []
        self.known: dict[str, Replica] = {}  # every replica seen, for stats
        self.ring: HashRing | None = None
        self.requests = 0
        self.failures = 0  # requests that ended in LLMError
        self.unavailable = 0  # requests that ended in ServiceUnavailable (outage)
        self.retries = 0
        self.tokens_in = 0
        self.tokens_out = 0

    def refresh(self, infos: list[ReplicaInfo]) -> None:
        """Adopt the source's current list; cheap when unchanged (identity-first compare)."""
        if infos == self.infos:
            return
        live = []
        for info in infos:
            rep = self.known.get(info.name)
            if rep is None or rep.info != info:  # new, or restarted elsewhere: fresh state
                fresh = Replica(info, self.policy)
                if rep is not None:
                    fresh.requests, fresh.failures = rep.requests, rep.failures
                rep = self.known[info.name] = fresh
            live.append(rep)
        self.infos = list(infos)
        self.live = live
        self.ring = HashRing(live) if self.policy.sticky and live else None

    def pick(self, tried: set[str] | None, sticky_key: str | None) -> Replica | None:
        """A usable replica, preferring untried ones; None if none is usable right now."""
        now = time.monotonic()
        if self.ring is not None and sticky_key is not None:
            return self._pick_sticky(sticky_key, tried, now)
        best: Replica | None = None
        best_load = 0
        ties = 0
        for rep in self.live:
            if rep.down_until > now:
                continue
            load = rep.outstanding + rep.external
            if tried and rep.name in tried:
                load += _TRIED_PENALTY
            if best is None or load < best_load:
                best, best_load, ties = rep, load, 1
            elif load == best_load:
                ties += 1
                if random.randrange(ties) == 0:  # reservoir sampling: uniform among ties
                    best = rep
        return best

    def _pick_sticky(self, key: str, tried: set[str] | None, now: float) -> Replica | None:
        assert self.ring is not None
        fallback: Replica | None = None
        for rep in self.ring.walk(key):
            if rep.down_until > now:
                continue
            if not tried or rep.name not in tried:
                return rep
            if fallback is None:
                fallback = rep
        return fallback

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        live = {rep.name for rep in self.live}
        replicas = {}
        for name, rep in self.known.items():
            replicas[name] = rep.stats(now)
            replicas[name]["live"] = name in live
        return {
            "requests": self.requests,
            "failures": self.failures,
            "unavailable": self.unavailable,
            "retries": self.retries,
            "outstanding": sum(rep.outstanding for rep in self.known.values()),
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "replicas": replicas,
        }
