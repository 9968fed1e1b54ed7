"""The Slurm launcher: LLM replicas as jobs and the workers as one job array, via submitit.

Everything lives under the run directory on the shared filesystem: submitit's
folders and logs in ``RUN_DIR/slurm``, the job ids in ``RUN_DIR/slurm/jobs.json``
(read by ``status``, ``stop`` and ``resume``). Servers are submitted first;
workers wait for replicas through the registry (their LLM client waits up to the
service's ``startup_timeout``), so the array may start whenever Slurm likes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import submitit

from matrixhpc.config import RunConfig
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.launch.jobs import CommandJob, WorkerJob
from matrixhpc.launch.launcher import JobState
from matrixhpc.launch.sbatch import allocation_script
from matrixhpc.launch.slurm_options import job_parameters
from matrixhpc.launch.slurm_queue import sacct_states, squeue_states
from matrixhpc.rundir import RunDir

MAX_REQUEUES = 100  # time-limit requeues per job: a long run may need many


def _executor(folder: Path, params: dict[str, Any]) -> submitit.SlurmExecutor:
    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=MAX_REQUEUES)
    executor.update_parameters(**params)
    return executor


class SlurmLauncher:
    def __init__(self, rd: RunDir, cfg: RunConfig) -> None:
        self.rd = rd
        self.cfg = cfg
        self.folder = rd.root / "slurm"
        self.jobs_file = self.folder / "jobs.json"

    def jobs(self) -> dict[str, Any]:
        jobs = read_json(self.jobs_file) or {"servers": {}, "workers": {}}
        by_hand = self.folder / "jobs.txt"  # written by an exported submit.sh
        if by_hand.exists():
            jobs["by_hand"] = by_hand.read_text().split()
        return jobs

    def _save(self, jobs: dict[str, Any]) -> None:
        atomic_write_json(self.jobs_file, jobs)

    def submit_servers(self, only: set[str] | None = None) -> None:
        jobs = self.jobs()
        host = self.cfg.slurm.bind_host
        for service, svc in self.cfg.services.items():
            for k in range(svc.replicas):
                name = f"{service}-{k}"
                if only is not None and name not in only:
                    continue
                gpus = 1 if svc.engine == "vllm" else None
                params = job_parameters(self.cfg, self.cfg.slurm.servers, name, gpus)
                argv = [
                    "serve",
                    svc.engine,
                    "--run-dir",
                    str(self.rd.root),
                    "--service",
                    service,
                    "--replica",
                    str(k),
                    "--host",
                    host,
                ]
                job = _executor(self.folder, params).submit(CommandJob(argv, self.cfg.slurm.python))
                jobs["servers"][name] = job.job_id
        self._save(jobs)

    def submit_workers(self, indices: list[int] | None = None) -> None:
        jobs = self.jobs()
        indices = list(range(self.cfg.workers.count)) if indices is None else indices
        params = job_parameters(self.cfg, self.cfg.slurm.workers, f"{self.cfg.name}-workers")
        argv = ["worker", "--run-dir", str(self.rd.root)]
        executor = _executor(self.folder, params)
        submitted = executor.map_array(WorkerJob(argv, self.cfg.slurm.python), indices)
        for index, job in zip(indices, submitted, strict=True):
            jobs["workers"][str(index)] = job.job_id
        self._save(jobs)

    def job_ids(self) -> list[str]:
        jobs = self.jobs()
        extra = [jobs["allocation"]] if jobs.get("allocation") else []
        return [
            *jobs["servers"].values(),
            *jobs["workers"].values(),
            *extra,
            *jobs.get("by_hand", []),
        ]

    def submit_allocation(self) -> None:
        """slurm.mode: allocation — one multi-node job runs servers and workers."""
        path = self.folder / "allocation.sbatch"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(allocation_script(self.cfg, self.rd.root))
        out = subprocess.run(
            ["sbatch", "--parsable", str(path)], capture_output=True, text=True, check=True
        )
        jobs = self.jobs()
        jobs.pop("by_hand", None)
        jobs["allocation"] = out.stdout.strip().split(";")[0]
        self._save(jobs)

    def cancel(self) -> None:
        ids = self.job_ids()
        if ids:
            subprocess.run(["scancel", *ids], check=False, capture_output=True)


def job_table(launcher: SlurmLauncher) -> list[JobState]:
    """(what, job id, state) for every job of the run: queued state, else final state."""
    jobs = launcher.jobs()
    named = [(f"server {n}", j) for n, j in jobs["servers"].items()]
    named += [(f"worker {i}", j) for i, j in jobs["workers"].items()]
    if jobs.get("allocation"):
        named.append(("allocation", jobs["allocation"]))
    named += [("job", j) for j in jobs.get("by_hand", [])]
    ids = [j for _, j in named]
    queued = squeue_states(ids)
    final = sacct_states([j for j in ids if j not in queued])
    return [JobState(what, j, queued.get(j) or final.get(j) or "UNKNOWN") for what, j in named]
