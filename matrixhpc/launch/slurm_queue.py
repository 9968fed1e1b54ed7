"""What the scheduler says about a run's jobs: ``squeue`` (still queued) and ``sacct``
(how they ended).

Read by the launcher's job table (``status``), by the watcher that follows a run and by
``resume``; it knows only job ids, so each of them can import it without the others.
"""

from __future__ import annotations

import re
import subprocess


def squeue_states(job_ids: list[str]) -> dict[str, str]:
    """Jobs still known to the scheduler (pending, running, requeued...), by id."""
    if not job_ids:
        return {}
    out = subprocess.run(
        [
            "squeue",
            "-h",
            "-o",
            "%i %T",
            "-j",
            ",".join(sorted(set(i.split("_")[0] for i in job_ids))),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job, _, state = line.partition(" ")
        for one in expand_array_id(job.strip()):
            states[one] = state.strip()
    return states


def expand_array_id(job: str) -> list[str]:
    """``123_[0-2,5%4]`` (pending array tasks, as squeue shows them) -> 123_0 ... 123_5."""
    match = re.fullmatch(r"(\d+)_\[([^\]]+)\]", job)
    if not match:
        return [job]
    base, spec = match.group(1), match.group(2).split("%")[0]
    out = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        out += [f"{base}_{i}" for i in range(int(first), int(last or first) + 1)]
    return out


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Final (or current) accounting state of each job, e.g. COMPLETED, FAILED."""
    if not job_ids:
        return {}
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=False,
    )
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job, _, state = line.partition("|")
        states[job.strip()] = state.split()[0] if state else ""
    return states
