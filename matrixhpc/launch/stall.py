"""Noticing a run that makes no progress, and saying what the launcher can see.

A stalled run looks exactly like a slow one from the progress bar: the count
just stops. Whoever watches it needs to be told, with what there is to know —
which workers are alive and what they hold, which journal is failing, whether
any LLM replica is up — so they can decide to wait, free a disk or stop it. The
warning never stops the run: a requeued server job may well come back.

The threshold is the config key ``workers.stall_warning`` (seconds; 0 turns the
warning off).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from matrixhpc.config import RunConfig
from matrixhpc.registry import WORKERS, Registry
from matrixhpc.status import RunStatus, journal_error

DEFAULT_STALL_WARNING = 600.0  # seconds without one more task written (workers.stall_warning)


def stall_warning(cfg: RunConfig) -> float:
    """Seconds without progress before the launcher warns (0: never)."""
    return float(cfg.workers.stall_warning)


class StallWatch:
    """Tracks the count of tasks written; says so when it has not moved for ``after``
    seconds, and again every ``after`` seconds while it stays stuck."""

    def __init__(self, after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after = after
        self.clock = clock
        self.done: int | None = None
        self.since = clock()
        self.due = self.since + after

    def observe(self, status: RunStatus, total: int | None = None) -> str | None:
        """A warning when one is due, else None (``total``: the tasks expected, if known)."""
        now = self.clock()
        done = int(status.totals.get("done", 0))
        if done != self.done:
            self.done, self.since, self.due = done, now, now + self.after
            return None
        if self.after <= 0 or now < self.due:
            return None
        self.due = now + self.after
        return describe(status, now - self.since, total)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def describe(status: RunStatus, stuck: float, total: int | None = None) -> str:
    """The warning: how long, and every worker and service as the run directory shows it."""
    now = time.time()
    expected = next((n for n in (status.expected, total) if n is not None), "?")
    lines = [
        f"no progress for {_duration(stuck)}: {int(status.totals.get('done', 0))}/{expected} "
        "tasks written and the count has not moved. What the run directory shows:"
    ]
    entries = Registry(status.run_dir / "registry").entries(WORKERS, fresh=True)
    by_name = {str(w.get("worker")): w for w in status.workers}
    lines += [
        "  " + _worker_line(name, entries.get(name), by_name.get(name), now)
        for name in sorted(set(by_name) | set(entries))
    ]
    lines += [
        f"  journal error on {name}: {error}"
        for name, w in sorted(by_name.items())
        if (error := journal_error(w)) is not None
    ]
    for service, replicas in status.replicas.items():
        lines.append(f"  service {service}: {len(replicas) or 'no'} live replica(s)")
    lines.append(
        f"The run goes on; matrixhpc status {status.run_dir} shows more, "
        f"matrixhpc stop {status.run_dir} stops it (resumable)."
    )
    return "\n".join(lines)


def _worker_line(
    name: str, entry: dict[str, Any] | None, worker: dict[str, Any] | None, now: float
) -> str:
    """``w001 running (heartbeat 2s ago) held=5 ...`` or why it looks dead."""
    if entry is None:
        state = "no live registry entry (not started, or dead)"
    else:
        beat = now - float(entry.get("heartbeat", now))
        state = f"{entry.get('state', '?')} on {entry.get('host', '?')} (heartbeat {beat:.0f}s ago)"
    if worker is None:
        return f"{name}: {state}; no status file yet"
    age = now - float(worker.get("updated", now))
    counts = " ".join(
        f"{key}={int(worker.get(key, 0))}"
        for key in ("held", "in_flight", "active", "queued", "pending_acks")
    )
    return f"{name}: {state}; status {age:.0f}s old: {counts}"
