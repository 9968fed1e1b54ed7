"""Plain sbatch scripts, to read, edit and submit by hand (``matrixhpc sbatch``).

The same ``#SBATCH`` options as the submitit path (:func:`slurm_options.job_parameters`).
Each script runs one ``matrixhpc`` command and requeues itself on Slurm's warning
signal (``--signal=B:USR2@N``): the command is told to stop (it commits its journal)
and ``scontrol requeue`` brings the job back with the same array index.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from matrixhpc.config import RunConfig
from matrixhpc.launch.slurm_options import job_parameters

REQUEUE_TRAP = """\
child=0
requeue() {
  echo "matrixhpc: warning signal (time limit or preemption): stopping and requeueing"
  kill -TERM "$child" 2>/dev/null || true
  wait "$child" || true
  if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then
    scontrol requeue "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
  else
    scontrol requeue "$SLURM_JOB_ID"
  fi
  exit 0
}
trap requeue USR2
"""


def sbatch_lines(params: dict[str, Any], *, array: str | None = None) -> list[str]:
    """``#SBATCH`` lines for the options :func:`job_parameters` produced."""
    names = {
        "job_name": "job-name",
        "ntasks_per_node": "ntasks-per-node",
        "cpus_per_task": "cpus-per-task",
        "gpus_per_node": "gpus-per-node",
    }
    skip = {"setup", "signal_delay_s", "array_parallelism", "additional_parameters"}
    lines = []
    for key, value in params.items():
        if key in skip:
            continue
        lines.append(_flag(names.get(key, key.replace("_", "-")), value))
    for key, value in params.get("additional_parameters", {}).items():
        lines.append(_flag(key.replace("_", "-"), value))
    lines.append(f"#SBATCH --signal=B:USR2@{params.get('signal_delay_s', 120)}")
    if array is not None:
        lines.append(f"#SBATCH --array={array}%{params.get('array_parallelism', 256)}")
    return lines


def _flag(name: str, value: Any) -> str:
    return f"#SBATCH --{name}" if value is True else f"#SBATCH --{name}={shlex.quote(str(value))}"


def _python(cfg: RunConfig) -> str:
    return cfg.slurm.python or sys.executable


def script(params: dict[str, Any], log: str, body: list[str], array: str | None = None) -> str:
    header = ["#!/bin/bash", *sbatch_lines(params, array=array), f"#SBATCH --output={log}"]
    setup = list(params.get("setup", []))
    return "\n".join([*header, "set -u", *setup, REQUEUE_TRAP, *body]) + "\n"


def _user_code(cfg: RunConfig) -> list[str]:
    """Where the workers import python steps and custom agents from: the config's
    python_path, read by each worker from RUN_DIR/config.yaml (not this directory)."""
    return [f"# user code (python_path in the run's config.yaml): {':'.join(cfg.python_path)}"]


def _background(command: list[str]) -> list[str]:
    return [" ".join(command) + " &", "child=$!", 'wait "$child"', "exit $?"]


def server_script(cfg: RunConfig, run_dir: Path, service: str, replica: int) -> str:
    svc = cfg.services[service]
    params = job_parameters(
        cfg,
        cfg.slurm.servers,
        f"{cfg.name}-{service}-{replica}",
        1 if svc.engine == "vllm" else None,
    )
    command = [
        shlex.quote(_python(cfg)),
        "-m",
        "matrixhpc",
        "serve",
        svc.engine,
        "--run-dir",
        shlex.quote(str(run_dir)),
        "--service",
        service,
        "--replica",
        str(replica),
        "--host",
        shlex.quote(cfg.slurm.bind_host),
    ]
    return script(params, f"{run_dir}/logs/slurm-%x-%j.out", _background(command))


def workers_script(cfg: RunConfig, run_dir: Path) -> str:
    params = job_parameters(cfg, cfg.slurm.workers, f"{cfg.name}-workers")
    command = [
        shlex.quote(_python(cfg)),
        "-m",
        "matrixhpc",
        "worker",
        "--run-dir",
        shlex.quote(str(run_dir)),
        "--index",
        '"$SLURM_ARRAY_TASK_ID"',
    ]
    log = f"{run_dir}/logs/slurm-%x-%A_%a.out"
    body = [*_user_code(cfg), *_background(command)]
    return script(params, log, body, array=f"0-{cfg.workers.count - 1}")


def allocation_script(cfg: RunConfig, run_dir: Path) -> str:
    """One multi-node job: ``srun`` starts the servers on the first nodes and the
    workers on the others (or all on the same nodes with ``slurm.shared_nodes``)."""
    s = cfg.slurm
    server_nodes, worker_nodes = s.servers.nodes, s.workers.nodes
    nodes = max(server_nodes, worker_nodes) if s.shared_nodes else server_nodes + worker_nodes
    params = job_parameters(cfg, s.workers, f"{cfg.name}-allocation")
    tasks = sum(svc.replicas for svc in cfg.services.values()) + cfg.workers.count
    # room for both srun steps: every task gets the larger of the two CPU counts
    params.update(nodes=nodes, ntasks=tasks, cpus_per_task=max(s.servers.cpus, s.workers.cpus))
    params.pop("ntasks_per_node", None)
    python, rd = shlex.quote(_python(cfg)), shlex.quote(str(run_dir))
    body = ["pids=()"]
    for service, svc in cfg.services.items():
        inner = (
            f"exec {python} -m matrixhpc serve {svc.engine} --run-dir {rd} --service "
            f"{service} --replica $SLURM_PROCID --host {shlex.quote(s.bind_host)}"
        )
        body.append(
            f"srun --nodes={server_nodes} --relative=0 --ntasks={svc.replicas} "
            f"--cpus-per-task={s.servers.cpus} --exact bash -c {shlex.quote(inner)} &"
        )
        body.append("pids+=($!)")
    relative = 0 if s.shared_nodes else server_nodes
    inner = f"exec {python} -m matrixhpc worker --run-dir {rd} --index $SLURM_PROCID"
    body += _user_code(cfg)
    body.append(
        f"srun --nodes={worker_nodes} --relative={relative} --ntasks={cfg.workers.count} "
        f"--cpus-per-task={s.workers.cpus} --exact bash -c {shlex.quote(inner)} &"
    )
    body += [
        "child=$!",
        'wait "$child"',
        "code=$?",
        'kill -TERM "${pids[@]}" 2>/dev/null',
        'wait "${pids[@]}" 2>/dev/null',
        "exit $code",
    ]
    return script(params, f"{run_dir}/logs/slurm-%x-%j.out", body)


SUBMIT = """\
#!/bin/bash
# Submit the LLM servers first, then the worker array (which waits for live
# replicas through the registry; --dependency=after makes it start no earlier).
set -euo pipefail
cd "$(dirname "$0")"
ids=()
for s in server-*.sbatch; do
  ids+=("$(sbatch --parsable "$s")")
done
dep=""
if [ ${#ids[@]} -gt 0 ]; then dep="--dependency=after:$(IFS=:; echo "${ids[*]}")"; fi
workers=$(sbatch --parsable $dep workers.sbatch)
echo "servers: ${ids[*]:-none}  workers: $workers"
printf '%s\\n' "${ids[@]}" "$workers" > {jobs}
"""


def export(cfg: RunConfig, run_dir: Path, out_dir: Path) -> list[Path]:
    """Write the scripts of a run (its directory already created) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text)
        path.chmod(0o755)
        written.append(path)

    if cfg.slurm.mode == "allocation":
        put("allocation.sbatch", allocation_script(cfg, run_dir))
        put(
            "submit.sh",
            '#!/bin/bash\nset -euo pipefail\ncd "$(dirname "$0")"\n'
            f"sbatch --parsable allocation.sbatch > {run_dir}/slurm/jobs.txt\n",
        )
        return written
    for service, svc in cfg.services.items():
        for k in range(svc.replicas):
            put(f"server-{service}-{k}.sbatch", server_script(cfg, run_dir, service, k))
    put("workers.sbatch", workers_script(cfg, run_dir))
    put("submit.sh", SUBMIT.replace("{jobs}", shlex.quote(f"{run_dir}/slurm/jobs.txt")))
    return written
