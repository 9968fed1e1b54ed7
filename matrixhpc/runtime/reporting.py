"""What a worker tells others: its registry entry (how peers find it and judge its
load) and its status file (what ``matrixhpc status`` shows).

The entry is refreshed with the status, every ``flush_interval``. Once this worker's
own tasks are all written its entry must outlive its heartbeat: peers still count it
when deciding that the whole run has finished.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection
from typing import Any

from matrixhpc.data.writers import ErrorLog
from matrixhpc.files import atomic_write_json
from matrixhpc.runtime.handoff import Handoffs
from matrixhpc.runtime.liveness import Liveness
from matrixhpc.runtime.parts import Collaborators, Parts
from matrixhpc.runtime.peers import KIND as WORKERS
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.stats import WorkerStats, base_status


def write_status(spec: WorkerSpec, status: dict[str, Any]) -> None:
    """``status/<worker>.json``; a failing disk must not stop the worker (it is retried)."""
    with contextlib.suppress(OSError):
        # no fsync: rewritten every second; what must survive a crash is in the journal
        atomic_write_json(spec.run_dir / "status" / f"{spec.name}.json", status, fsync=False)


class Reporter:
    def __init__(
        self,
        spec: WorkerSpec,
        roles: Collection[str],
        deps: Collaborators,
        parts: Parts,
        peers: PeerDirectory,
        handoffs: Handoffs,
        liveness: Liveness,
        stats: WorkerStats,
        errors: ErrorLog,
        fault: Callable[[], str | None],
    ) -> None:
        self.spec = spec
        self.roles = sorted(roles)
        self.deps = deps
        self.parts = parts
        self.peers = peers
        self.handoffs = handoffs
        self.liveness = liveness
        self.stats = stats
        self.errors = errors
        self.fault = fault  # the worker's fault so far, if any

    async def run(self) -> None:
        while True:
            self.peers.refresh()
            self.publish()
            self.write_status()
            self.parts.admitter.book.writer.write_index()
            self.errors.flush()
            await self.deps.clock.sleep(self.spec.flush_interval)

    def publish(self, state: str = "running") -> None:
        """Write this worker's registry entry."""
        done = self.parts.admitter.done.is_set()
        driver = self.parts.driver
        entry = {
            "address": self.deps.inbox.address,
            "group": self.spec.group,
            "roles": self.roles,
            "active": driver.active,
            "queued": driver.queued,
            "max_active": self.spec.max_active,
            "origin_done": done,
            "state": state,
        }
        with contextlib.suppress(OSError):
            self.deps.registry.register(WORKERS, self.spec.name, entry, ttl=None if done else -1.0)

    def write_status(self) -> None:
        write_status(self.spec, self.status())

    def status(self) -> dict[str, Any]:
        parts, book = self.parts, self.parts.admitter.book
        status = base_status(self.spec.name, self.spec.group)
        status.update(
            self.stats.counters(),
            admitted=book.admitted,
            done=book.ok + book.failed,
            ok=book.ok,
            failed=book.failed,
            in_flight=len(book.in_flight),
            held=len(parts.holdings),
            active=parts.driver.active,
            queued=parts.driver.queued,
            duplicate_returns=book.duplicates,
            stale=book.stale,
            reissued=book.reissued,
            renewed=parts.leases.renewed,
            redriven=self.liveness.redriven,
            waiting_for_role={r: n for r, n in parts.dispatcher.waiting.items() if n},
            fault=self.fault(),
            pending_acks=len(self.handoffs.pending),
            resent=self.handoffs.resent,
            rerouted=self.handoffs.rerouted,
            journal=self.deps.journal.stats,
            llm=self._llm_stats(),
            repaired=parts.repaired,
            origin_done=parts.admitter.done.is_set(),
            admission_done=parts.admitter.admission_done,
            updated=time.time(),
            **self.stats.rates(book.ok + book.failed),
        )
        return status

    def _llm_stats(self) -> dict[str, Any]:
        """The LLM client's view of each replica, when the client keeps one."""
        stats = getattr(self.deps.llm, "stats", None)
        return stats() if callable(stats) else {}
