"""Counters a worker keeps and the status file it writes for ``matrixhpc status``."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

RATE_WINDOW = 10.0  # seconds over which rates are computed
ROLE_FIELDS = ("steps", "tokens_in", "tokens_out", "seconds", "errors")


@dataclass
class WorkerStats:
    steps: int = 0  # agent steps run here (hops)
    sent: int = 0  # tasks handed to peers
    received: int = 0  # tasks taken from the inbox
    returned: int = 0  # finished tasks sent back to their origin
    dropped_frames: int = 0  # malformed or unknown frames
    step_errors: int = 0
    duplicates: int = 0  # hand-offs received twice (dropped, re-ACKed)
    replayed: int = 0  # journal records replayed at start
    tokens_in: int = 0
    tokens_out: int = 0
    row_errors: int = 0
    started: float = field(default_factory=time.time)
    roles: dict[str, dict[str, float]] = field(default_factory=dict)
    _marks: list[tuple[float, int, int, int]] = field(default_factory=list, repr=False)

    def record_turn(self, role: str, turn: dict[str, Any]) -> None:
        """Per-role steps, tokens, seconds and errors: what `status` shows per role."""
        usage = turn.get("usage") or {}
        timings = turn.get("timings") or {}
        acc = self.roles.get(role)
        if acc is None:
            acc = self.roles[role] = dict.fromkeys(ROLE_FIELDS, 0.0)
        tokens_in = usage.get("prompt_tokens", 0)
        tokens_out = usage.get("completion_tokens", 0)
        acc["steps"] += 1
        acc["tokens_in"] += tokens_in
        acc["tokens_out"] += tokens_out
        acc["seconds"] += timings.get("end", 0.0) - timings.get("start", 0.0)
        acc["errors"] += 1 if turn.get("error") else 0
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    def rates(self, done: int) -> dict[str, float]:
        """Rates over the last RATE_WINDOW seconds (tasks done by this origin, tokens, steps)."""
        now = time.time()
        self._marks.append((now, done, self.tokens_out, self.steps))
        while len(self._marks) > 2 and now - self._marks[1][0] >= RATE_WINDOW:
            self._marks.pop(0)
        t0, d0, k0, s0 = self._marks[0]
        span = max(now - t0, 1e-9)
        if span < 0.5:
            return {"tasks_per_s": 0.0, "tokens_per_s": 0.0, "steps_per_s": 0.0}
        return {
            "tasks_per_s": (done - d0) / span,
            "tokens_per_s": (self.tokens_out - k0) / span,
            "steps_per_s": (self.steps - s0) / span,
        }

    def counters(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


def base_status(name: str, group: str) -> dict[str, Any]:
    return {
        "worker": name,
        "group": group,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "rss_mb": resident_mb(),
        "cpu_s": time.process_time(),
    }


def resident_mb() -> float:
    """Current resident memory (not the peak), from /proc where there is one."""
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
