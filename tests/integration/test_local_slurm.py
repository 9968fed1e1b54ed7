"""The local Slurm cluster (slurm/local-cluster.sh) really schedules, accounts and requeues jobs,
and submitit drives it: the ground the Slurm launcher's tests stand on."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import submitit
from slurm_cluster import (  # noqa: F401  (slurm_cluster_fixture is the fixture `slurm_cluster`)
    sacct_states,
    sbatch,
    slurm_cluster_fixture,
    wait_for_states,
)

pytestmark = pytest.mark.slurm


def _wait_file(path: Path, lines: int, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            got = path.read_text().splitlines()
            if len(got) >= lines:
                return got
        time.sleep(0.1)
    raise TimeoutError(f"{path}: fewer than {lines} lines after {timeout}s")


def test_sbatch_hostname_completes(slurm_cluster: Path, tmp_path: Path) -> None:
    out = tmp_path / "hostname.out"
    t0 = time.monotonic()
    job = sbatch("-o", str(out), "--wrap", "hostname")
    states = wait_for_states([job], timeout=30)
    latency = time.monotonic() - t0
    assert states == {job: "COMPLETED"}
    assert out.read_text().strip() == socket.gethostname()
    print(f"\n[slurm] sbatch --wrap hostname -> COMPLETED in sacct: {latency:.2f}s")


def test_job_array_completes(slurm_cluster: Path, tmp_path: Path) -> None:
    job = sbatch(
        "-a",
        "0-2",
        "-o",
        "/dev/null",
        "--wrap",
        f"echo $SLURM_ARRAY_TASK_ID > {tmp_path}/task-$SLURM_ARRAY_TASK_ID",
    )
    tasks = [f"{job}_{i}" for i in range(3)]
    # ask for the task ids: for a moment sacct may show the array as one record, the bare id
    states = wait_for_states(tasks, timeout=30)
    assert states == dict.fromkeys(tasks, "COMPLETED")
    for i in range(3):
        assert (tmp_path / f"task-{i}").read_text().strip() == str(i)


def test_scancel_is_cancelled_in_sacct(slurm_cluster: Path, tmp_path: Path) -> None:
    started = tmp_path / "started"
    job = sbatch("-o", "/dev/null", "--wrap", f"touch {started}; sleep 300")
    _wait_file(started, 0, timeout=30)
    subprocess.run(["scancel", job], check=True, timeout=30)
    assert wait_for_states([job], timeout=30) == {job: "CANCELLED"}


def test_scontrol_requeue_runs_the_job_again(slurm_cluster: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # the first run waits to be requeued; the second (SLURM_RESTART_COUNT=1) finishes
    script = (
        f'echo "run ${{SLURM_RESTART_COUNT:-0}}" >> {runs}; '
        'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; fi'
    )
    job = sbatch("-o", "/dev/null", "--requeue", "--wrap", script)
    _wait_file(runs, 1, timeout=30)
    subprocess.run(["scontrol", "requeue", job], check=True, timeout=30)
    # a requeued job may start again only after cred_expire (local-cluster.sh: 10 s)
    assert wait_for_states([job], timeout=90) == {job: "COMPLETED"}
    assert runs.read_text().splitlines() == ["run 0", "run 1"]
    history = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-D", "-o", "JobID,State", "-j", job],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert history == [f"{job}|REQUEUED", f"{job}|COMPLETED"]


def test_submitit_runs_a_function(slurm_cluster: Path, tmp_path: Path) -> None:
    def work(x: int, y: int) -> dict[str, Any]:
        # defined here so that cloudpickle sends it by value (this module is not importable
        # in the job)
        import os
        import socket

        return {"sum": x + y, "job": os.environ["SLURM_JOB_ID"], "host": socket.gethostname()}

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    executor.update_parameters(timeout_min=5, mem_gb=1, cpus_per_task=1, slurm_partition="debug")
    job = executor.submit(work, 2, 3)
    deadline = time.monotonic() + 60
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            pytest.fail(f"submitit job {job.job_id} not done after 60s: {job.state}")
        time.sleep(0.2)
    assert job.result() == {"sum": 5, "job": job.job_id, "host": socket.gethostname()}
    # sacct lags the job by up to a second or so
    assert wait_for_states([job.job_id], timeout=30) == {job.job_id: "COMPLETED"}
    assert sacct_states([job.job_id]) == {job.job_id: "COMPLETED"}
