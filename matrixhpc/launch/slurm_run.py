"""``matrixhpc run --slurm``, ``resume``, ``stop`` and ``status`` of a Slurm run: submit,
record, then follow; the Slurm backend of the :class:`~matrixhpc.launch.launcher.Launcher`.

Above both the launcher (:mod:`.slurm`, which submits) and the watcher
(:mod:`.slurm_watch`, which follows), so neither imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from typing_extensions import override

from matrixhpc.config import RunConfig
from matrixhpc.launch.completion import forget_workers, worker_name
from matrixhpc.launch.console import say, use_log
from matrixhpc.launch.launcher import JobState, Launcher, Stopped
from matrixhpc.launch.runinfo import launch_marks
from matrixhpc.launch.slurm import SlurmLauncher, job_table
from matrixhpc.launch.slurm_queue import squeue_states
from matrixhpc.launch.slurm_watch import record_run, watch
from matrixhpc.registry import Registry
from matrixhpc.rundir import RunDir


def launch_slurm(cfg: RunConfig, run_dir: Path, *, detach: bool = False) -> int:
    rd = RunDir(run_dir)
    rd.create(cfg)
    use_log(rd.logs / "launcher.log")
    record_run(rd, cfg, state="submitting", **launch_marks(rd))
    launcher = SlurmLauncher(rd, cfg)
    if cfg.slurm.mode == "allocation":
        launcher.submit_allocation()
    else:
        launcher.submit_servers()
        launcher.submit_workers()
    record_run(rd, cfg, state="running")
    say(f"[matrixhpc] run directory: {run_dir}")
    say(f"[matrixhpc] submitted jobs: {', '.join(launcher.job_ids())}")
    if detach:
        say(f"[matrixhpc] follow with: matrixhpc status {run_dir}")
        return 0
    return watch(rd, cfg, launcher)


def resume_slurm(rd: RunDir, cfg: RunConfig, *, detach: bool = False) -> int:
    """Resubmit the jobs that are no longer queued; the rest keep running.

    The registry entries of the workers about to start again are removed first:
    their "done" markers from the last incarnation would end the new server jobs
    at once and make the watcher believe the run finished."""
    use_log(rd.logs / "launcher.log")
    launcher = SlurmLauncher(rd, cfg)
    jobs = launcher.jobs()
    queued = squeue_states(launcher.job_ids())
    if cfg.slurm.mode == "allocation":
        if not any(j.split("_")[0] in queued for j in launcher.job_ids()):
            forget_workers(Registry(rd.registry))
            launcher.submit_allocation()
        record_run(rd, cfg, state="running", **launch_marks(rd))
        return 0 if detach else watch(rd, cfg, launcher)

    def alive(job_id: str) -> bool:
        return job_id in queued or (job_id.split("_")[0] in queued and "_" not in job_id)

    servers = {name for name, job_id in jobs["servers"].items() if not alive(job_id)}
    expected = {f"{s}-{k}" for s, svc in cfg.services.items() for k in range(svc.replicas)}
    servers |= expected - set(jobs["servers"])
    workers = [i for i in range(cfg.workers.count) if not alive(jobs["workers"].get(str(i), ""))]
    forget_workers(Registry(rd.registry), [worker_name(i) for i in workers])
    if servers:
        launcher.submit_servers(servers)
    if workers:
        launcher.submit_workers(workers)
    record_run(rd, cfg, state="running", **launch_marks(rd))
    say(f"[matrixhpc] resubmitted {len(servers)} server job(s) and {len(workers)} worker(s)")
    return 0 if detach else watch(rd, cfg, launcher)


class SlurmBackend(Launcher):
    """The :class:`~matrixhpc.launch.launcher.Launcher` on a Slurm cluster: the run's
    processes are jobs, which outlive the submitting shell (``--detach``) and are
    stopped with ``scancel`` (Slurm's own signal and grace period, not ``timeout``)."""

    @override
    def submit(self, cfg: RunConfig, run_dir: Path, *, detach: bool = False) -> int:
        return launch_slurm(cfg, run_dir, detach=detach)

    @override
    def resume(self, rd: RunDir, cfg: RunConfig) -> int:
        return resume_slurm(rd, cfg)

    @override
    def stop(self, rd: RunDir, timeout: float) -> Stopped:
        launcher = SlurmLauncher(rd, rd.load())
        launcher.cancel()
        return Stopped(f"cancelled {len(launcher.job_ids())} job(s)")

    @override
    def job_states(self, rd: RunDir) -> list[JobState]:
        return job_table(SlurmLauncher(rd, rd.load()))
