"""May this run be resumed now? The checks ``matrixhpc resume`` makes before it starts
anything, each returning what is wrong (a message for the user) or None.

- The run's launcher still runs: a second one would start every process again
  beside the first. Told by host, PID and start time (``run.json``'s
  ``launcher_host``/``launcher_pid``/``launcher_start``), so that a PID the kernel has
  since given to another process is not taken for it.
- The run was launched on another host: its launcher cannot be checked from here
  (the run directory is on a shared filesystem), so only ``--force`` goes on.
- The config or the input changed since the run started: the records written so far
  came from the old ones, so mixing needs ``--force``.

They only read (run.json as given, /proc, the dataset's fingerprint), so the CLI
decides what to do with a problem, and the checks are tested without a launch.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from matrixhpc.launch.process import Recorded, pid_alive
from matrixhpc.launch.runinfo import Fingerprints

Run = Mapping[str, object]  # a run.json document


def launcher_problem(run: Run, run_dir: Path, *, force: bool) -> str | None:
    """Why the launcher recorded in ``run`` forbids a resume now, or None.

    A Slurm run has no launcher process to check: its jobs are the run, and its
    resume resubmits only the jobs that left the queue."""
    pid = run.get("launcher_pid")
    if not isinstance(pid, int) or run.get("launcher") == "slurm":
        return None
    if _still_running(run, pid):
        return f"{run_dir} is running (launcher pid {pid}); stop it first"
    host = run.get("launcher_host")
    if force or not isinstance(run.get("launcher_start"), int):
        return None  # an older run.json (no start time, no host): its PID was all there was
    if host and host != socket.gethostname():
        return (
            f"{run_dir} was launched on host {host} (launcher pid {pid}), which cannot be "
            f"checked from here: resume it on {host}, or use --force if that host is down"
        )
    return None


def _still_running(run: Run, pid: int) -> bool:
    """The recorded launcher runs on this host; without a recorded start time (an older
    run.json) a live PID is all there is to go by."""
    start = run.get("launcher_start")
    if not isinstance(start, int):
        return pid_alive(pid)
    host = run.get("launcher_host")
    return Recorded("launcher", pid, str(host) if host else None, start).mismatch() is None


def changes(run: Run, now: Fingerprints, dataset: str) -> list[str]:
    """What changed since the run started, as the refusal names it: "the config", and
    "the input (<dataset.path>)"; empty when neither did."""
    found = []
    if now.config_hash != run.get("config_hash"):
        found.append("the config")
    if now.input_fingerprint != run.get("input_fingerprint"):
        found.append(f"the input ({dataset})")
    return found


def change_problem(changed: list[str], *, force: bool) -> str | None:
    """The refusal to resume on changed config or input (from :func:`changes`), or None
    when nothing changed or ``--force`` accepts it."""
    if not changed or force:
        return None
    return (
        f"refusing to resume: {' and '.join(changed)} changed since the run started; "
        "records written so far came from the old one. Use --force to resume anyway."
    )
