"""Following a Slurm run from the submitting shell: progress, job states, failures.

Ctrl-C detaches (the jobs keep running; ``matrixhpc status`` / ``stop`` later).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from matrixhpc.config import RunConfig
from matrixhpc.data.manifest import write_manifest
from matrixhpc.launch.completion import run_finished
from matrixhpc.launch.console import say
from matrixhpc.launch.outcome import summarise
from matrixhpc.launch.process import tail
from matrixhpc.launch.progress import Progress
from matrixhpc.launch.runinfo import record_run as _record
from matrixhpc.launch.slurm import SlurmLauncher
from matrixhpc.launch.slurm_queue import sacct_states, squeue_states
from matrixhpc.launch.stall import stall_warning
from matrixhpc.registry import Registry
from matrixhpc.rundir import RunDir

POLL = 2.0
FAILED = {
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def record_run(rd: RunDir, cfg: RunConfig, **fields: Any) -> None:
    _record(rd, cfg, "slurm", **fields)


def job_log(folder: Path, job_id: str) -> Path:
    """submitit's log of a job (``<id>_<task>_log.err``; arrays ``<array>_<index>``)."""
    return folder / f"{job_id}_0_log.err"


class Detached(Exception):
    pass


def _detach(_signum: int, _frame: object) -> None:
    raise Detached


def watch(rd: RunDir, cfg: RunConfig, launcher: SlurmLauncher) -> int:
    previous = signal.signal(signal.SIGINT, _detach)
    run = _record(rd, cfg, "slurm")
    progress = Progress(rd.root, int(run.get("total_tasks") or 0), stall_warning(cfg))
    registry = Registry(rd.registry)
    try:
        while not run_finished(registry, cfg.workers.count):
            progress.update()
            problem = _lost_jobs(launcher)
            if problem:
                say(f"\n[matrixhpc] {problem}")
                record_run(rd, cfg, state="failed")
                say(f"[matrixhpc] continue with: matrixhpc resume {rd.root}")
                return 1
            time.sleep(POLL)
        progress.update(final=True)
    except Detached:
        say(
            f"\n[matrixhpc] detached; the jobs keep running. matrixhpc status {rd.root} "
            f"to follow, matrixhpc stop {rd.root} to cancel."
        )
        return 0
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    _drain(launcher)
    manifest = write_manifest(rd.output, rd.run_info, cfg, "finished")
    record_run(rd, cfg, state="finished", finished=time.time(), records=manifest["records"])
    code, lines = summarise(manifest, cfg.run.max_failed_fraction)
    for line in lines:
        say(f"[matrixhpc] {line}")
    return code


def _lost_jobs(launcher: SlurmLauncher) -> str | None:
    """A worker job that left the queue in a failed state, or every replica of a service."""
    jobs = launcher.jobs()
    ids = launcher.job_ids()
    queued = squeue_states(ids)
    gone = [i for i in ids if i.split("_")[0] not in queued and i not in queued]
    if not gone:
        return None
    final = sacct_states(gone)
    for job_id in [jobs.get("allocation"), *jobs.get("by_hand", [])]:
        if job_id and final.get(job_id) in FAILED:
            return f"job {job_id} ended {final[job_id]}"
    for index, job_id in jobs["workers"].items():
        if final.get(job_id) in FAILED:
            log = job_log(launcher.folder, job_id)
            return f"worker {index} (job {job_id}) ended {final[job_id]}; {log}:\n{tail(log)}"
    services: dict[str, list[str]] = {}
    for name, job_id in jobs["servers"].items():
        services.setdefault(name.rsplit("-", 1)[0], []).append(job_id)
    for service, job_ids in services.items():
        if all(j in gone and final.get(j) in FAILED for j in job_ids):
            log = job_log(launcher.folder, job_ids[0])
            return f"every replica job of service {service!r} has ended; {log}:\n{tail(log)}"
    return None


def _drain(launcher: SlurmLauncher, timeout: float = 120.0) -> None:
    """Wait for the jobs to leave the queue (servers stop by themselves when done)."""
    deadline = time.monotonic() + timeout
    while squeue_states(launcher.job_ids()) and time.monotonic() < deadline:
        time.sleep(1.0)
