"""Journal cost: hops/s with durability off | batch | strict, and replay time.

Throughput runs the Coral workflow through `matrixhpc run` (the user's code path)
with 2 workers on the simulated engine, once per durability setting, in the same
invocation; `off` (no fsync) is the baseline. Two engine settings: `zero` (answers
at once: the framework is the bottleneck, the worst case for journal overhead) and
the default H100 profile at time scale 0.01 (the engine is the bottleneck, as in a
real run). Replay builds a journal of N records shaped like a real one (ADMIT,
TASK, STEP deltas, SENT/ACKED, DONE) and times `recover(journal.replay())`.

    python benchmarks/journal.py [--trials 40] [--records 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.recovery import (
    acked_record,
    admit_record,
    done_record,
    recover,
    step_record,
    task_record,
)
from matrixhpc.task import Task

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "journal.json"


def run_once(durability: str, profile: str, scale: float, trials: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        argv = [
            sys.executable,
            "-m",
            "matrixhpc",
            "run",
            str(REPO / "configs" / "coral.yaml"),
            "--local",
            "--engine",
            "simulated",
            f"services.llm.simulated.profile={profile}",
            f"services.llm.simulated.time_scale={scale}",
            f"dataset.trials={trials}",
            "workers.count=2",
            "workers.window=512",
            "services.llm.max_concurrency=1024",
            f"workers.durability={durability}",
            "--run-dir",
            str(run_dir),
        ]
        subprocess.run(argv, check=True, capture_output=True)
        statuses = [json.loads(p.read_text()) for p in (run_dir / "status").glob("*.json")]
    steps = sum(s["steps"] for s in statuses)
    busy = max(s["updated"] - s["started"] for s in statuses)
    groups = sum(s["journal"]["groups"] for s in statuses)
    records = sum(s["journal"]["records"] for s in statuses)
    return {
        "hops_per_s": steps / busy,
        "steps": steps,
        "seconds": busy,
        "records_per_group": records / max(groups, 1),
    }


def synthetic_journal(directory: Path, records: int) -> int:
    """Write ~``records`` records: per task ADMIT, TASK, 16 STEP deltas, SENT/ACKED x1, DONE."""

    async def write() -> int:
        journal = Journal(directory, "off")
        journal.open()
        written = 0
        n = 0
        while written < records:
            task = Task(id=f"r{n}-t0", seed=n, row={"question": "q" * 200}, origin="w000")
            task.token = n + 1
            journal.append(admit_record(task, time.time()))
            journal.append(task_record(task))
            written += 2
            for hop in range(1, 17):
                task.hop = hop
                turn: Any = {
                    "role": "student",
                    "content": "word " * 60,
                    "usage": {"prompt_tokens": 300, "completion_tokens": 80},
                }
                task.state = {"turns": hop // 3, "answers": {"student": "B"}}
                journal.append(step_record(task, turn))
                written += 1
            journal.append([4, task.id, 0, task.hop, "w001", 1])
            journal.append(acked_record((task.id, 0, task.hop)))
            journal.append(done_record(task.id))
            written += 3
            n += 1
        await journal.close()
        return written

    return asyncio.run(write())


def replay_time(records: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "journal"
        written = synthetic_journal(directory, records)
        size = sum(p.stat().st_size for p in directory.glob("seg-*.log"))
        started = time.perf_counter()
        state = recover(Journal(directory, "off").replay())
        elapsed = time.perf_counter() - started
    assert state.records == written
    return {"records": written, "bytes": size, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    result: dict[str, Any] = {"throughput": {}}
    print(f"{'engine':22} {'durability':10} {'hops/s':>9} {'vs off':>7} {'records/group':>14}")
    for profile, scale in (("zero", 1.0), ("h100-llama3.1-8b", 0.01)):
        rows = {d: run_once(d, profile, scale, args.trials) for d in ("off", "batch", "strict")}
        result["throughput"][profile] = rows
        for durability, row in rows.items():
            ratio = row["hops_per_s"] / rows["off"]["hops_per_s"]
            print(
                f"{profile:22} {durability:10} {row['hops_per_s']:>9.0f} {ratio:>7.2f} "
                f"{row['records_per_group']:>14.1f}"
            )
    replay = replay_time(args.records)
    result["replay"] = replay
    print(
        f"replay: {replay['records']} records ({replay['bytes'] / 2**20:.1f} MiB) "
        f"in {replay['seconds']:.2f} s"
    )
    dialogue = result["throughput"]["h100-llama3.1-8b"]
    cost = 1 - dialogue["batch"]["hops_per_s"] / dialogue["off"]["hops_per_s"]
    print(f"batch_cost_on_dialogue={cost:.1%} replay_100k_s={replay['seconds']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
