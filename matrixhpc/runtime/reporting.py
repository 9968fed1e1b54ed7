"""What a worker tells others: its registry entry (how peers find it and judge its
load) and its status file (what ``matrixhpc status`` shows).

Both are offered every ``flush_interval`` and written only when they changed (the
metadata budget, DESIGN.md): the entry through :meth:`Registry.publish` (its heartbeat
is refreshed when due), with the load it advertises (active, queued) updated at most
every ``spec.load_interval`` (every peer re-reads an entry that changed, so at scale the
load rides along rarely and the per-peer ``sent`` counts balance between updates); the
status file when anything but its timestamp and rates changed, and at least every
``STATUS_REFRESH`` seconds (its ``updated`` age is shown by ``status``). Once this
worker's own tasks are all written it leaves a permanent marker (``registry/finished``)
rather than changing its entry: every peer waits for every marker at the end of the
run, and a listing shows them all, where a changed entry costs each peer a read.
Worker 0 also saves a snapshot of the worker entries every ``SNAPSHOT_INTERVAL``
seconds, from which a restarted worker starts instead of reading every entry.
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

STATUS_REFRESH = 30.0  # an unchanged status file is still rewritten this often
INDEX_INTERVAL = 5.0  # the shard index (a cache, see data/layout.py) at most this often
VOLATILE = ("updated", "tasks_per_s", "tokens_per_s", "steps_per_s")
SNAPSHOT_INTERVAL = 30.0  # worker 0's snapshot of the registry's worker entries


class StatusFile:
    """``status/<worker>.json`` written when its content changed (rates and the time
    aside), or when ``refresh`` seconds passed since the last write."""

    def __init__(self, spec: WorkerSpec, refresh: float = STATUS_REFRESH) -> None:
        self.spec = spec
        self.refresh = refresh
        self._last: dict[str, Any] | None = None
        self._at = float("-inf")

    def offer(self, status: dict[str, Any], now: float, *, force: bool = False) -> bool:
        """Write ``status`` if it is news (or ``force``); returns whether it was written."""
        steady = {k: v for k, v in status.items() if k not in VOLATILE}
        if not force and steady == self._last and now - self._at < self.refresh:
            return False
        write_status(self.spec, status)
        self._last, self._at = steady, now
        return True


class LoadGate:
    """The load a worker advertises: the current one at most every ``interval``."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._load: tuple[int, int] | None = None
        self._at = float("-inf")

    def advertise(self, load: tuple[int, int], now: float) -> tuple[int, int]:
        if self._load is None or (load != self._load and now - self._at >= self.interval):
            self._load, self._at = load, now
        return self._load


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
        self.status_file = StatusFile(spec)
        self.load = LoadGate(spec.load_interval)
        self._indexed = float("-inf")
        self._snapshot = float("-inf")
        self._declared = False

    async def run(self) -> None:
        while True:
            self.tick()
            await self.deps.clock.sleep(self.spec.flush_interval)

    def tick(self) -> None:
        """One round: look at the peers, then write what changed."""
        self.peers.refresh()
        self.publish()
        now = self.deps.clock.monotonic()
        if self.spec.index == 0 and now - self._snapshot >= SNAPSHOT_INTERVAL:
            with contextlib.suppress(OSError):
                self.deps.registry.save_snapshot(WORKERS)
            self._snapshot = now
        self.status_file.offer(self.status(), now)
        writer = self.parts.admitter.book.writer
        if now - self._indexed >= INDEX_INTERVAL:
            writer.write_index(only_if_changed=True)
            self._indexed = now
        else:
            writer.flush()
        self.errors.flush()

    def publish(self, state: str = "running") -> None:
        """Write this worker's registry entry (and, once, its "finished" marker)."""
        done = self.parts.admitter.done.is_set()
        if done and not self._declared:
            with contextlib.suppress(OSError):  # retried at the next round
                self.peers.declare_finished()
                self._declared = True
        driver = self.parts.driver
        load = (driver.active, driver.queued)
        if state == "running":
            load = self.load.advertise(load, self.deps.clock.monotonic())
        entry = {
            "address": self.deps.inbox.address,
            "group": self.spec.group,
            "roles": self.roles,
            "active": load[0],
            "queued": load[1],
            "max_active": self.spec.max_active,
            "state": state,
        }
        with contextlib.suppress(OSError):
            self.deps.registry.publish(WORKERS, self.spec.name, entry)

    def leave(self) -> str | None:
        """The whole run finished: mark this worker exited and remove its entry. Returns
        why that failed (a full disk), if it did: the servers and the Slurm watcher wait
        for the marker, so the worker must then stop resumably, not exit as done."""
        try:
            self.peers.declare_exited()
        except OSError as exc:
            return f"cannot mark this worker exited in the registry: {exc}"
        return None

    def write_status(self) -> None:
        """Write the status file now, changed or not (at the end)."""
        self.status_file.offer(self.status(), self.deps.clock.monotonic(), force=True)

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
            held_turns=sum(len(t.history) for t in parts.holdings.tasks.values()),
            written_here=book.written_here,
            turns_written=book.turns_written,
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
            sandboxes=self.deps.sandboxes.stats() if self.deps.sandboxes else {},
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
