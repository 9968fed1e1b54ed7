"""The ``#SBATCH`` options of a run's jobs, from its config.

One source for both ways a run reaches Slurm: submitit (:mod:`.slurm`) and the plain
scripts of ``matrixhpc sbatch`` (:mod:`.sbatch`). Apart from both, so the script writer
needs nothing of the launcher (which submits its allocation script): no cycle.
"""

from __future__ import annotations

import re
from typing import Any

from matrixhpc.config import RunConfig, SlurmJobConfig


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
