"""What every launcher does, whatever runs the processes: the ``Launcher`` protocol.

The split follows submitit's executors: one interface (submit, resume, stop, job
states) and one backend per place that runs the processes — this machine
(:class:`~matrixhpc.launch.local.LocalBackend`) or a Slurm cluster
(:class:`~matrixhpc.launch.slurm_run.SlurmBackend`). The CLI holds no
``if slurm`` branches: it picks a backend by name (:mod:`.backends`, from
``run.json``'s ``launcher`` for a run that exists) and calls it. Adding a
launcher means one backend class and one name, not another branch in every command.

This module imports no backend, so each backend can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Protocol

from matrixhpc.config import RunConfig
from matrixhpc.rundir import RunDir


class JobState(NamedTuple):
    """One scheduler job of a run as ``status`` shows it: e.g. ("worker 0", "123_0", "RUNNING")."""

    what: str
    job_id: str
    state: str


@dataclass(frozen=True)
class Stopped:
    """What ``stop`` did, said by the backend in its own terms (processes or jobs).

    ``what`` completes "<what> of RUN_DIR", e.g. "stopped 3 process(es)"; ``notes``
    are the recorded processes that were left alone and why (another host's, a PID
    now reused), for the user to see on stderr."""

    what: str
    notes: list[str] = field(default_factory=list)


class Launcher(Protocol):
    """Starts, continues and stops the processes of one run; says how its jobs stand."""

    def submit(self, cfg: RunConfig, run_dir: Path, *, detach: bool = False) -> int:
        """Create the run directory, start the run and follow it; the exit code for the CLI.

        ``detach``: return once the run is started (where its processes outlive this one)."""
        ...

    def resume(self, rd: RunDir, cfg: RunConfig) -> int:
        """Start again whatever of the run is not running and follow it to its end.

        The caller has made its checks (:mod:`.resume_checks`) and recorded any config
        change first; the backend restarts from the journals and output already there."""
        ...

    def stop(self, rd: RunDir, timeout: float) -> Stopped:
        """Stop every process or job the run started; it stays resumable.

        ``timeout``: seconds a process has to exit on SIGTERM before SIGKILL."""
        ...

    def job_states(self, rd: RunDir) -> list[JobState]:
        """The run's scheduler jobs and their states; empty where there is no scheduler."""
        ...
