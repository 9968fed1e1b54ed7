"""Baseline 1, batch-level: the dataset in batches; a batch runs to completion before the next.

The shape of a map-batches pipeline (Ray Data ``map_batches`` over an actor pool, a
``datasets.map(batched=True)`` loop): ``N`` processes each take their slice of the dataset
(row ``i`` to process ``i mod N``, as the runtime's workers do) and run it in batches of
``B / N`` tasks; all dialogues of a batch run concurrently on asyncio, and the next batch
starts only when every one of them has finished. ``B`` tasks are in flight when batches
start. Each process has one ``LLMClient`` with the same per-replica concurrency and runs
the same agents and router as the runtime (:mod:`benchmarks.stepping`).

Processes are independent (no barrier across processes), which favours this baseline:
one process's slow batch does not hold up the others.

    python -m benchmarks.batch --run-dir RD --index I --count N --batch B_PER_PROCESS
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from pathlib import Path

from benchmarks.stepping import Stepper, event_loop_policy, make_tasks
from matrixhpc.data.writers import ShardWriter
from matrixhpc.launch.process import Child, spawn
from matrixhpc.rundir import RunDir
from matrixhpc.task import Task


async def run(run_dir: Path, index: int, count: int, batch: int) -> None:
    name = f"b{index:03d}"
    stepper = Stepper(name, run_dir)
    stepper.connect()
    writer = ShardWriter(RunDir(run_dir).output, name, stepper.cfg.output.shard_records)

    async def drive(task: Task) -> None:
        task.next = stepper.router.first(task)
        while not task.finished:
            await stepper.step(task)
            stepper.route(task)
        writer.write(task.to_record())

    stepper.mark_start()
    batches = 0
    try:
        tasks = make_tasks(stepper.cfg, name, (index, count))
        while chunk := list(itertools.islice(tasks, batch)):
            await asyncio.gather(*(drive(task) for task in chunk))
            batches += 1
    finally:
        writer.close()
        stepper.write_status("batch", batches=batches, batch_size=batch)
        await stepper.close()


def launch(run_dir: Path, inflight: int, workers: int, env: dict[str, str]) -> list[Child]:
    """Start the ``workers`` batch processes; ``inflight`` tasks in flight at a batch start."""
    per_process = max(1, -(-inflight // workers))
    children = []
    for i in range(workers):
        argv = [sys.executable, "-m", "benchmarks.batch", "--run-dir", str(run_dir),
                "--index", str(i), "--count", str(workers),
                "--batch", str(per_process)]  # fmt: skip
        log = RunDir(run_dir).logs / f"b{i:03d}.log"
        children.append(spawn(f"b{i:03d}", "worker", argv, log, env=env))
    return children


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True, help="tasks per batch, per process")
    args = parser.parse_args()
    event_loop_policy()
    asyncio.run(run(args.run_dir, args.index, args.count, args.batch))


if __name__ == "__main__":
    main()
