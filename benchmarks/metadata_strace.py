"""Does the metadata model (benchmarks/metadata.py) agree with a real run? strace says.

A real local run (Coral, simulated engine, N workers, slow enough to stay in steady
state) is traced for a window mid-run: ``strace -f -y`` attached to every process of the
run (launcher, workers, LLM server), the path-level calls on the run directory counted
by kind and by place. The model then runs the same N, intervals and replica count for the
same simulated window, counting the same kinds at the same places, and the two are
compared.

What is counted, on both sides, in the model's terms:

- ``open``: an ``openat`` that is not of a directory (the model wraps ``os.open`` and
  ``open``); ``getdents``: a directory listing (strace: ``openat`` with
  ``O_DIRECTORY``, which ``os.scandir`` does once per listing; the model counts each
  ``os.scandir``); ``stat``: a ``stat``/``newfstatat``/``statx`` of a path (not of an
  open file: Python's ``open`` fstat's its fd); ``rename``, ``utime`` (of a path or an
  fd), ``unlink``, ``mkdir``, ``link``.
- Places: ``registry/``, ``status/``, the shard indexes (``output/.index/``) and
  ``run.json``: what the model models (``matrixhpc.registry``, status files, shard
  indexes, the launcher's progress poll). Left out on both sides: the journal and the
  output shards (an append to an open file is no metadata operation; a new segment or
  shard is rare), logs, and the one-off start-up (the window starts after it).

    python -m benchmarks.metadata_strace [--workers 2 4] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks import metadata as model
from benchmarks.fs_counting import place

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "metadata_strace.json"
PLACES = ("registry", "status", "index", "run.json")
SYSCALLS = (
    "openat,open,stat,lstat,newfstatat,statx,rename,renameat,renameat2,utimensat,"
    "unlink,unlinkat,mkdir,mkdirat,link,linkat"
)
KINDS = {
    "stat": "stat",
    "lstat": "stat",
    "newfstatat": "stat",
    "statx": "stat",
    "rename": "rename",
    "renameat": "rename",
    "renameat2": "rename",
    "utimensat": "utime",
    "unlink": "unlink",
    "unlinkat": "unlink",
    "mkdir": "mkdir",
    "mkdirat": "mkdir",
    "link": "link",
    "linkat": "link",
}
LINE = re.compile(r"^(?:\[pid\s+)?(\d+)\]?\s+(\w+)\((.*)")
FD_PATH = re.compile(r"^-?\d+<([^>]*)>")  # strace -y: 5</run/registry/workers>
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')


def classify(line: str, root: str) -> tuple[str, str] | None:
    """``(place, kind)`` of one strace line, or None if it is not counted."""
    m = LINE.match(line)
    if m is None or "resumed>" in line:
        return None
    call, args = m.group(2), m.group(3)
    path = _path(call, args)
    if path is None or not path.startswith(root + "/"):
        return None
    where = place(Path(root), path)
    if where not in PLACES:
        return None
    if call in ("openat", "open"):
        return where, "getdents" if "O_DIRECTORY" in args else "open"
    kind = KINDS.get(call)
    if kind == "stat" and "AT_EMPTY_PATH" in args and '""' in args:
        return None  # fstat of an open file, not a path lookup
    return None if kind is None else (where, kind)


def _path(call: str, args: str) -> str | None:
    """The path a call names: its first string argument, resolved against a directory
    fd's path (strace -y); for an fd-only call (futimens) the fd's path."""
    first = args.split(",", 1)[0].strip()
    fd = FD_PATH.match(first)
    strings = STRING.findall(args)
    if call in ("utimensat",) and (not strings or args.split(",", 2)[1].strip() == "NULL"):
        return fd.group(1) if fd else None
    if not strings:
        return None
    path = str(strings[0])
    if not path.startswith("/") and fd is not None:
        path = os.path.join(fd.group(1), path)
    return path


def count(trace: Path, root: str) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    with trace.open(errors="replace") as fh:
        for line in fh:
            found = classify(line, root)
            if found is not None:
                counts[found] += 1
    return counts


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def _done(run_dir: Path) -> int:
    total = 0
    for status in (run_dir / "status").glob("*.json"):
        try:
            total += int(json.loads(status.read_text()).get("done", 0))
        except (OSError, ValueError):
            continue
    return total


def real_run(workers: int, window: float, tmp: Path) -> tuple[Counter[tuple[str, str]], float]:
    """Trace a real run of ``workers`` workers for ``window`` seconds of its steady state."""
    run_dir = (tmp / f"run-{workers}").resolve()
    argv = [sys.executable, "-m", "matrixhpc", "run", str(REPO / "configs" / "coral.yaml"),
            "--local", "--engine", "simulated", "services.llm.simulated.time_scale=2",
            "services.llm.max_concurrency=512", "dataset.trials=200",
            f"workers.count={workers}", "--run-dir", str(run_dir)]  # fmt: skip
    launcher = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _done(run_dir) < 20 * workers:  # past start-up: every worker writing records
            if launcher.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the run ended or stalled before steady state: {run_dir}")
            time.sleep(1.0)
        pids = _descendants(launcher.pid)
        trace = tmp / f"trace-{workers}.txt"
        tracer = subprocess.Popen(
            ["strace", "-f", "-qq", "-y", "-e", f"trace={SYSCALLS}", "-o", str(trace)]
            + [arg for pid in pids for arg in ("-p", str(pid))],
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        time.sleep(window)
        tracer.send_signal(signal.SIGINT)  # detach
        tracer.wait(timeout=30)
        seconds = time.monotonic() - started
        if launcher.poll() is not None:
            raise RuntimeError("the run finished inside the window: make it longer")
        return count(trace, str(run_dir)), seconds
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        except subprocess.TimeoutExpired:
            launcher.kill()


def modelled(workers: int, window: float) -> Counter[tuple[str, str]]:
    """The model's counts for the same N over a simulated window of steady state (the
    real run has one LLM replica, like coral.yaml)."""
    random.seed(workers)
    root = Path(tempfile.mkdtemp(prefix="mhpc-meta-strace-"))
    model.COUNTS.root = root
    try:
        with model.counting():
            sim = model.Sim(workers, workers, False, root, replicas=1)
            with sim.wall_clock():
                sim.start_loops()
                sim.run_until(30.0)
                model.COUNTS.reset()
                model.COUNTS.on = True
                sim.run_until(30.0 + window)
                model.COUNTS.on = False
        return Counter({k: round(v) for k, v in model.COUNTS.by_place.items() if k[0] in PLACES})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compare(real: Counter[tuple[str, str]], seconds: float, sim: Counter[tuple[str, str]],
            window: float) -> dict[str, Any]:  # fmt: skip
    keys = sorted(set(real) | set(sim))
    rows = [
        {
            "place": place,
            "kind": kind,
            "real_per_s": round(real[(place, kind)] / seconds, 2),
            "model_per_s": round(sim[(place, kind)] / window, 2),
        }
        for place, kind in keys
    ]
    real_total = sum(real.values()) / seconds
    model_total = sum(sim.values()) / window
    ratio = real_total / model_total if model_total else float("inf")
    return {
        "rows": rows,
        "real_per_s": round(real_total, 1),
        "model_per_s": round(model_total, 1),
        "ratio": round(ratio, 3),
        "within_20pct": abs(ratio - 1) <= 0.2,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--window", type=float, default=60.0, help="seconds traced")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="mhpc-strace-") as tmp:
        for n in args.workers:
            real, seconds = real_run(n, args.window, Path(tmp))
            result = {"workers": n, **compare(real, seconds, modelled(n, seconds), seconds)}
            results.append(result)
            print(f"\nN={n}: {'place':9} {'kind':9} {'real/s':>8} {'model/s':>8}")
            for row in result["rows"]:
                print(
                    f"      {row['place']:9} {row['kind']:9} {row['real_per_s']:>8.2f}"
                    f" {row['model_per_s']:>8.2f}"
                )
            print(
                f"strace_vs_model N={n} real={result['real_per_s']}/s "
                f"model={result['model_per_s']}/s ratio={result['ratio']} "
                f"within_20pct={'yes' if result['within_20pct'] else 'no'}",
                flush=True,
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
