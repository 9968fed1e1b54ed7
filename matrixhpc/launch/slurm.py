"""The Slurm launcher: LLM replicas as jobs and the workers as one job array, via submitit.

Everything lives under the run directory on the shared filesystem: submitit's
folders and logs in ``RUN_DIR/slurm``, the job ids in ``RUN_DIR/slurm/jobs.json``
(read by ``status``, ``stop`` and ``resume``). Servers are submitted first;
workers wait for replicas through the registry (their LLM client waits up to the
service's ``startup_timeout``), so the array may start whenever Slurm likes.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import submitit

from matrixhpc.config import RunConfig, SlurmJobConfig
from matrixhpc.launch.completion import forget_workers, worker_name
from matrixhpc.launch.console import say, use_log
from matrixhpc.launch.jobs import CommandJob, WorkerJob
from matrixhpc.rundir import RunDir
from matrixhpc.runtime.registry import Registry, atomic_write_json, read_json

MAX_REQUEUES = 100  # time-limit requeues per job: a long run may need many


def minutes(value: str | int) -> int:
    """Slurm time (``D-HH:MM:SS``, ``HH:MM:SS``, ``MM``) or minutes -> whole minutes."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", value.strip())
    if not match:
        raise ValueError(f"not a Slurm time: {value!r}")
    days, first, second, third = (int(g) if g else 0 for g in match.groups())
    if match.group(4) is not None:  # H:M:S
        hours, mins, secs = first, second, third
    elif match.group(3) is not None:  # H:M (with days) or M:S
        hours, mins, secs = (first, second, 0) if match.group(1) else (0, first, second)
    else:
        hours, mins, secs = (first, 0, 0) if match.group(1) else (0, first, 0)
    return max(1, days * 1440 + hours * 60 + mins + (1 if secs else 0))


def job_parameters(
    cfg: RunConfig, job: SlurmJobConfig, name: str, gpus_default: int | None = None
) -> dict[str, Any]:
    """sbatch options of one job, from the job's section and the slurm defaults."""
    s = cfg.slurm
    gpus = job.gpus if job.gpus is not None else gpus_default
    params: dict[str, Any] = {
        "job_name": name,
        "time": minutes(job.time),
        "partition": job.partition or s.partition,
        "account": job.account or s.account,
        "qos": job.qos or s.qos,
        "constraint": job.constraint or s.constraint,
        "nodes": job.nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": job.cpus,
        "mem": job.mem,
        "gpus_per_node": gpus or None,
        "gres": job.gres,
        "exclusive": True if job.exclusive else None,
        "setup": list(s.setup),
        "signal_delay_s": s.signal_delay_s,
        "array_parallelism": s.array_parallelism,
        "additional_parameters": {"requeue": True, **s.additional, **job.additional},
    }
    return {k: v for k, v in params.items() if v is not None}


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
        from matrixhpc.launch.sbatch import allocation_script

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


def launch_slurm(cfg: RunConfig, run_dir: Path, *, detach: bool = False) -> int:
    from matrixhpc.launch.slurm_watch import record_run, watch

    rd = RunDir(run_dir)
    rd.create(cfg)
    use_log(rd.logs / "launcher.log")
    record_run(rd, cfg, state="submitting")
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
    from matrixhpc.launch.slurm_watch import record_run, watch

    use_log(rd.logs / "launcher.log")
    launcher = SlurmLauncher(rd, cfg)
    jobs = launcher.jobs()
    queued = squeue_states(launcher.job_ids())
    if cfg.slurm.mode == "allocation":
        if not any(j.split("_")[0] in queued for j in launcher.job_ids()):
            forget_workers(Registry(rd.registry))
            launcher.submit_allocation()
        record_run(rd, cfg, state="running")
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
    record_run(rd, cfg, state="running")
    say(f"[matrixhpc] resubmitted {len(servers)} server job(s) and {len(workers)} worker(s)")
    return 0 if detach else watch(rd, cfg, launcher)


def job_table(launcher: SlurmLauncher) -> list[tuple[str, str, str]]:
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
    return [(what, j, queued.get(j) or final.get(j) or "UNKNOWN") for what, j in named]
