"""`--slurm` against a real single-node Slurm (slurm/local-cluster.sh): jobs, requeue, stop."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_complete,
    dialogue_config,
    done_count,
    matrixhpc,
    records,
    start_run,
    wait_for,
)

from matrixhpc.launch.slurm_queue import sacct_states, squeue_states

pytestmark = pytest.mark.slurm

RESOURCES = [
    "slurm.servers.cpus=1",
    "slurm.workers.cpus=1",
    "slurm.servers.time=20",
    "slurm.workers.time=20",
]
# the default slurm.bind_host ("*": every interface, the advertised host is the node's name)
DEFAULTS = ["--slurm", *RESOURCES]
SLURM = ["--slurm", "slurm.bind_host=127.0.0.1", *RESOURCES]


def _slurm_run(
    tmp_path: Path,
    dataset: Path,
    latency: float,
    run_dir: Path,
    *args: str,
    launcher: list[str] = SLURM,
) -> subprocess.CompletedProcess[str]:
    """``matrixhpc run --slurm`` of the dialogue workflow, to the end (or detached)."""
    cfg = dialogue_config(tmp_path, dataset, latency)
    return matrixhpc("run", str(cfg), *launcher, *args, "--run-dir", str(run_dir), timeout=600)


def _jobs(run_dir: Path) -> dict[str, Any]:
    jobs: dict[str, Any] = json.loads((run_dir / "slurm" / "jobs.json").read_text())
    return jobs


def _all_ids(run_dir: Path) -> list[str]:
    jobs = _jobs(run_dir)
    return [*jobs["servers"].values(), *jobs["workers"].values()]


def _settled(job_ids: list[str]) -> dict[str, str]:
    """sacct states once every job has left the queue."""
    wait_for(lambda: not squeue_states(job_ids), 120)
    wait_for(lambda: all(s and s != "RUNNING" for s in sacct_states(job_ids).values()), 60)
    return sacct_states(job_ids)


def test_full_slurm_run_every_job_completed(
    slurm_cluster: Path, tmp_path: Path, dataset: Path
) -> None:
    """With the default bind host, as a user would run it: servers and workers listen on
    every interface and advertise the node's name, whichever address family it resolves to."""
    run_dir = tmp_path / "run"
    proc = _slurm_run(tmp_path, dataset, 0.002, run_dir, "dataset.trials=4", launcher=DEFAULTS)
    assert proc.returncode == 0, proc.stderr
    assert_complete(records(run_dir), 200)
    states = _settled(_all_ids(run_dir))
    assert len(states) == 4, states
    assert set(states.values()) == {"COMPLETED"}, states
    status = matrixhpc("status", str(run_dir))
    assert "200/200" in status.stdout


@pytest.mark.parametrize(
    "interrupt",
    [
        ["scontrol", "requeue"],  # an admin's (or a node failure's) requeue: the job is killed
        # a time limit or a preemption: SIGUSR2 -> the worker commits its journal and stops,
        # submitit requeues the array task
        ["scancel", "--signal=USR2"],
    ],
    ids=["requeue", "usr2"],
)
def test_interrupted_worker_is_requeued_and_continues(
    slurm_cluster: Path, tmp_path: Path, dataset: Path, interrupt: list[str]
) -> None:
    run_dir = tmp_path / "run"
    proc = start_run(
        dialogue_config(tmp_path, dataset, 0.05),
        run_dir,
        *SLURM,
        "dataset.trials=8",
        "workers.window=20",
        "workers.ack_timeout=2",
    )
    wait_for(lambda: (run_dir / "slurm" / "jobs.json").exists() and done_count(run_dir) >= 20)
    victim = _jobs(run_dir)["workers"]["1"]
    subprocess.run([*interrupt, victim], check=True)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert_complete(records(run_dir), 400)
    status = json.loads((run_dir / "status" / "w001.json").read_text())
    assert status["replayed"] > 0, "the requeued worker should have replayed its journal"
    if "--signal=USR2" in interrupt:
        log = "".join(p.read_text() for p in (run_dir / "slurm").glob(f"{victim}_*_log.err"))
        assert "requeu" in log.lower(), log[-2000:]


def test_cancelled_replica_the_other_takes_the_load(
    slurm_cluster: Path, tmp_path: Path, dataset: Path
) -> None:
    run_dir = tmp_path / "run"
    proc = start_run(
        dialogue_config(tmp_path, dataset, 0.05),
        run_dir,
        *SLURM,
        "dataset.trials=8",
        "workers.window=20",
    )
    wait_for(lambda: (run_dir / "slurm" / "jobs.json").exists() and done_count(run_dir) >= 20)
    subprocess.run(["scancel", _jobs(run_dir)["servers"]["llm-1"]], check=True)
    cancelled_at = time.time()
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    recs = records(run_dir)
    assert_complete(recs, 400)
    late = [
        t
        for r in recs
        for t in r["history"]
        if "replica" in t and t["timings"]["start"] > cancelled_at + 2
    ]
    assert late
    assert {t["replica"] for t in late} == {"r0"}


def test_stop_leaves_no_job(slurm_cluster: Path, tmp_path: Path, dataset: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _slurm_run(tmp_path, dataset, 1.0, run_dir, "dataset.trials=20", "--detach")
    assert proc.returncode == 0, proc.stderr
    ids = _all_ids(run_dir)
    wait_for(lambda: done_count(run_dir) >= 1 or len(squeue_states(ids)) >= 2)
    stopped = matrixhpc("stop", str(run_dir))
    assert stopped.returncode == 0, stopped.stderr
    wait_for(lambda: not squeue_states(ids), 60)
    queue = subprocess.run(["squeue", "-h"], capture_output=True, text=True, check=True)
    assert queue.stdout.strip() == ""


def test_exported_sbatch_scripts_produce_the_same_output(
    slurm_cluster: Path, tmp_path: Path, dataset: Path
) -> None:
    cfg = dialogue_config(tmp_path, dataset, 0.002)
    out = tmp_path / "scripts"
    exported = matrixhpc("sbatch", str(cfg), str(out), *SLURM[1:], "dataset.trials=2")
    assert exported.returncode == 0, exported.stderr
    submitted = subprocess.run(["bash", str(out / "submit.sh")], capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    run_dir = out / "run"
    wait_for(lambda: (run_dir / "output" / "_manifest.json").exists(), 300)
    by_hand = records(run_dir)
    assert_complete(by_hand, 100)
    reference = tmp_path / "reference"
    proc = matrixhpc("run", str(cfg), "--local", "dataset.trials=2", "--run-dir", str(reference))
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["id"] for r in by_hand) == sorted(r["id"] for r in records(reference))
    ids = (run_dir / "slurm" / "jobs.txt").read_text().split()
    assert set(_settled(ids).values()) == {"COMPLETED"}


def test_one_allocation_mode(slurm_cluster: Path, tmp_path: Path, dataset: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _slurm_run(
        tmp_path,
        dataset,
        0.002,
        run_dir,
        "dataset.trials=2",
        "slurm.mode=allocation",
        "slurm.shared_nodes=true",
        "slurm.workers.cpus=1",
    )
    assert proc.returncode == 0, proc.stderr
    assert_complete(records(run_dir), 100)
