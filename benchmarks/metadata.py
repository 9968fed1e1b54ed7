"""Metadata operations a run costs the shared filesystem, for N simulated workers.

Runs the real registry (:class:`matrixhpc.registry.Registry`, :class:`PeerDirectory`),
status-file and shard-index code of N workers plus LLM-server heartbeats and the
launcher's progress reads, in one process on a simulated clock, against a real
directory. Every filesystem call is counted by wrapping ``os.stat``, ``os.scandir``,
``os.replace``/``rename``, ``os.utime``, ``os.unlink``, ``os.mkdir``, ``os.link``,
``os.open`` and ``io.open``/``open`` (pathlib goes through these); a close is counted per
open. One listing counts as one ``getdents`` (plus one per 1,000 entries).

Phases: steady state (every worker busy), a requeue storm (``--requeue`` of the workers
restarted within 30 s: new processes, new addresses, starting from worker 0's snapshot of
the registry), the end of the run (every worker finishes within 30 s, declares it with
its marker, then waits for the others' markers as ``Worker._wait_for_peers`` does, and
leaves: an "exited" marker, its entry removed).

``--baseline`` runs the code before issue 16 for comparison: the registry of commit
e2d16b8 (read from git at run time, not copied: every entry rewritten every
flush, every scan reads every entry), the status file and shard index written every
flush, a new ``read_status`` per progress poll, and that commit's intervals.

Only ``--readers`` of the workers (a sample; default: all of them, and 50 for the
baseline, ``--baseline-readers``) may run their registry scans; their counts are scaled
by N / readers (every worker writes for real, and, with today's code,
every worker waits for the markers for real: a look costs the same at any N). Ops/s are
per simulated second.

    python -m benchmarks.metadata --workers 1000 [--baseline] [--json out.json]
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import matrixhpc.files as files_module
from benchmarks.fs_counting import COUNTS, METADATA, counting
from matrixhpc.build import full_reread, load_interval, scan_interval, worker_ttl
from matrixhpc.data.writers import ShardWriter
from matrixhpc.launch.completion import run_finished
from matrixhpc.registry import Registry
from matrixhpc.runtime.peers import KIND, PeerDirectory
from matrixhpc.runtime.reporting import (
    INDEX_INTERVAL,
    SNAPSHOT_INTERVAL,
    LoadGate,
    StatusFile,
    write_status,
)
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.status import StatusReader, read_status

BASELINE = "e2d16b8"  # the commit before issue 16: its registry is the baseline


def _load_baseline_registry() -> types.ModuleType:
    """The registry module as it was at :data:`BASELINE`, from git (no vendored copy)."""
    repo = Path(__file__).resolve().parents[1]
    where = f"{BASELINE}:matrixhpc/registry.py"
    source = subprocess.run(
        ["git", "show", where], cwd=repo, check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType("baseline_registry")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, where, "exec"), module.__dict__)  # our own history, not input
    return module


LOAD_CHURN = 0.2  # chance per round that a worker's load (active tasks) has changed
BUDGET_STEADY = 2000.0  # ops/s for the whole run at 1,000 workers (DESIGN.md)
BUDGET_BURST = 10000.0


class SimWorker:
    """One worker's filesystem side: scans, registry entry, status file, shard index."""

    def __init__(self, sim: Sim, index: int, reader: bool) -> None:
        self.sim, self.index, self.reader = sim, index, reader
        n = sim.n
        self.name = f"w{index:03d}"
        self.flush = max(1.0, n / 64)
        self.spec = WorkerSpec(
            self.name,
            index,
            n,
            "g",
            sim.root,
            "-",
            flush_interval=self.flush,
            load_interval=load_interval(n),
        )
        self.done = 0
        self.active = 0  # tasks stepping: what the entry advertises
        self.finished = False
        self.exited = False
        self.generation = 0
        self.writer = ShardWriter(sim.root / "output", self.name, 100_000, durable=False)
        self.start()

    def start(self) -> None:
        """A (new) process: fresh caches, a new address."""
        sim = self.sim
        self.generation += 1
        if sim.baseline:
            self.registry: Any = sim.registry_class(
                sim.root / "registry", scan_interval=scan_interval(sim.n), clock=sim.clock
            )
        else:
            self.registry = Registry(
                sim.root / "registry",
                ttl=worker_ttl(sim.n),
                scan_interval=scan_interval(sim.n),
                clock=sim.clock,
                full_every=full_reread(sim.n),
            )
        self.peers = PeerDirectory(self.registry, self.name)
        self.status_file = StatusFile(self.spec)
        self.load = LoadGate(self.spec.load_interval)
        self.indexed = float("-inf")
        self.snapshot = float("-inf")
        self.declared = False
        self.publish()
        if self.reader:
            self.peers.refresh(fresh=True)

    def entry(self) -> dict[str, Any]:
        if random.random() < LOAD_CHURN:
            self.active = random.randint(0, 64)
        active = self.active
        load = (active, 0) if self.sim.baseline else self.load.advertise((active, 0), self.sim.t)
        entry = {
            "address": f"tcp://10.0.0.{self.index % 250}:{5000 + self.generation}",
            "group": "g",
            "roles": ["a", "b"],
            "active": load[0],
            "queued": load[1],
            "max_active": 4096,
            "state": "exited" if self.exited else "running",
        }
        if self.sim.baseline:  # then, "finished" rode in the entry
            entry["origin_done"] = self.finished
        return entry

    def publish(self) -> None:
        """``Reporter.publish``."""
        if self.sim.baseline:
            ttl = None if self.finished else -1.0
            self.registry.register(KIND, self.name, self.entry(), ttl=ttl)
            return
        if self.finished and not self.declared:
            self.peers.declare_finished()
            self.declared = True
        self.registry.publish(KIND, self.name, self.entry())

    def tick(self) -> None:
        """``Reporter.tick``: peers, entry, status, index."""
        sim = self.sim
        if self.reader:
            self.peers.refresh()
            self.registry.entries("llm/svc")  # the LLM client's replica list
        self.publish()
        if not sim.baseline and self.index == 0 and sim.t - self.snapshot >= SNAPSHOT_INTERVAL:
            self.registry.save_snapshot(KIND)
            self.snapshot = sim.t
        if not self.finished:
            for _ in range(random.randint(1, 4)):
                self.writer.write({"id": f"{self.name}-{self.done}", "status": "ok"})
                self.done += 1
        status = {"worker": self.name, "done": self.done, "updated": sim.t, "tasks_per_s": 2.0}
        if sim.baseline:
            write_status(self.spec, status)
            self.writer.write_index()
        else:
            self.status_file.offer(status, sim.t)
            if sim.t - self.indexed >= INDEX_INTERVAL:
                self.writer.write_index(only_if_changed=True)
                self.indexed = sim.t

    def wait_interval(self) -> float:
        """``Worker._wait_for_peers``'s interval, then and now."""
        if self.sim.baseline:
            return max(0.25, self.registry.scan_interval / 4)
        return max(0.25, self.sim.n / 400)

    def waits(self) -> bool:
        """Whether this worker's wait for the end is simulated (a sampled reader then;
        every worker now, a look costing the same whatever N)."""
        return self.reader or not self.sim.baseline


class Sim:
    def __init__(self, n: int, readers: int, baseline: bool, root: Path, replicas: int) -> None:
        self.n, self.baseline, self.root = n, baseline, root
        self.registry_class: Any = _load_baseline_registry().Registry if baseline else Registry
        self.t = 0.0
        self.queue: list[tuple[float, int, Callable[[], None], float]] = []
        self.order = itertools.count()
        # worker 0 always reads: it saves the registry snapshot restarted workers start from
        sample = {0, *random.sample(range(1, n), min(readers, n) - 1)} if n > 1 else {0}
        self.scale = n / len(sample)
        self.workers = [SimWorker(self, i, i in sample) for i in range(n)]
        self.replicas = [self._replica(r) for r in range(replicas)]
        self.progress: Any = None if baseline else StatusReader(root)
        if self.progress is not None:  # its re-reads of status files on the simulated clock
            self.progress.files.clock = self.clock

    def clock(self) -> float:
        return 1_700_000_000.0 + self.t

    @contextmanager
    def wall_clock(self) -> Iterator[None]:
        """``matrixhpc.files`` times its listings by the wall clock, to tell whether a
        directory changed in the same timestamp tick (``DirWatch``); the simulation runs
        many times faster than real time, so that tick would cover most of it and every
        look would list again. Its listings are timed on the simulated clock instead,
        from the real time the simulation started (directory mtimes stay real)."""
        start = time.time()
        saved = files_module.time
        files_module.time = types.SimpleNamespace(time=lambda: start + self.t)  # type: ignore[assignment]
        try:
            yield
        finally:
            files_module.time = saved

    def _replica(self, r: int) -> Any:
        reg = self.registry_class(self.root / "registry", clock=self.clock)
        entry = {"url": f"http://10.0.1.{r}:8000/v1", "model": "m", "state": "ready"}
        reg.register("llm/svc", f"r{r}", entry)
        return reg, entry

    def at(self, when: float, job: Callable[[], None], weight: float = 1.0) -> None:
        heapq.heappush(self.queue, (when, next(self.order), job, weight))

    def run_until(self, end: float) -> None:
        while self.queue and self.queue[0][0] <= end:
            when, _, job, weight = heapq.heappop(self.queue)
            self.t = COUNTS.now = when
            COUNTS.weight = weight
            job()
        self.t = COUNTS.now = end

    # ------------------------------------------------------------ recurring jobs

    def every(self, period: float, job: Callable[[], bool], weight: float, start: float) -> None:
        """Run ``job`` every ``period`` (jittered) while it returns True."""

        def again() -> None:
            if job():
                self.at(self.t + period * random.uniform(0.9, 1.1), again, weight)

        self.at(start, again, weight)

    def start_loops(self) -> None:
        for w in self.workers:
            weight = self.scale if w.reader else 1.0
            self.every(w.flush, lambda w=w: self._tick(w), weight, random.uniform(0, w.flush))
        for reg, entry in self.replicas:
            period = max(reg.ttl / (4 if self.baseline else 5), 0.2)
            beat = reg.register if self.baseline else reg.publish
            self.every(period, lambda b=beat, e=entry, r=reg: self._beat(b, e, r), 1.0, 0.0)
            # a server ends with the run: wait_run_finished looks every 5 s
            self.every(5.0, lambda r=reg: self._server_look(r), 1.0, 0.0)
        self.every(0.5, self._progress, 1.0, 0.0)  # the local launcher's progress poll

    def _tick(self, w: SimWorker) -> bool:
        if w.exited:
            return False
        w.tick()
        return True

    def _server_look(self, reg: Any) -> bool:
        if self.baseline:
            reg.entries(KIND, fresh=True)
        else:
            run_finished(reg, self.n)
        return True

    def _beat(self, beat: Callable[..., Any], entry: dict[str, Any], reg: Any) -> bool:
        beat("llm/svc", f"r{self.replicas.index((reg, entry))}", entry)
        return True

    def _progress(self) -> bool:
        if self.baseline:
            read_status(self.root)
        else:
            self.progress.read()
        return True

    # ------------------------------------------------------------ storms

    def requeue(self, fraction: float, window: float) -> None:
        for w in random.sample(self.workers, max(1, int(self.n * fraction))):
            self.at(self.t + random.uniform(0, window), w.start, self.scale if w.reader else 1.0)

    def finish(self, window: float) -> None:
        for w in self.workers:
            weight = self.scale if w.reader else 1.0
            self.at(self.t + random.uniform(0, window), lambda w=w: self._finish(w), weight)

    def _finish(self, w: SimWorker) -> None:
        w.finished = True
        w.publish()
        if w.waits():
            weight = self.scale if self.baseline else 1.0
            self.every(w.wait_interval(), lambda: self._wait(w), weight, self.t)

    def _wait(self, w: SimWorker) -> bool:
        if self.baseline:  # then: a fresh scan, and "finished" read from the entries
            w.peers.refresh(fresh=True)
            entries = w.registry.entries(KIND).values()  # the scan just made: no more calls
            finished = sum(1 for e in entries if e.get("origin_done")) >= self.n
        else:
            finished = w.peers.finished(self.n)
        if finished:
            w.exited = True
            if self.baseline:
                w.publish()
            else:
                w.peers.declare_exited()
            return False
        return True


def rates(seconds: float, n: int) -> dict[str, Any]:
    total = {k: v / seconds for k, v in COUNTS.by_kind.items()}
    meta = sum(total.get(k, 0.0) for k in METADATA)
    peak = max(COUNTS.by_second.values(), default=0.0)
    return {
        "ops_per_s": round(meta, 1),
        "ops_per_s_per_worker": round(meta / n, 2),
        "closes_per_s": round(total.get("close", 0.0), 1),
        "peak_ops_in_a_second": round(peak, 1),
        "by_kind": {k: round(v, 1) for k, v in sorted(total.items())},
    }


def measure(n: int, readers: int, baseline: bool, steady: float, requeue: float) -> dict[str, Any]:
    random.seed(n)
    root = Path(tempfile.mkdtemp(prefix="mhpc-meta-"))
    COUNTS.root = root
    stack = ExitStack()
    try:
        with counting(), stack:
            sim = Sim(n, readers, baseline, root, replicas=max(2, n // 125))
            stack.enter_context(sim.wall_clock())
            sim.start_loops()
            warm = 3 * max(scan_interval(n), max(1.0, n / 64), 10.0)
            sim.run_until(warm)
            out: dict[str, Any] = {"workers": n, "code": "baseline" if baseline else "new"}
            COUNTS.reset()
            COUNTS.on = True
            sim.run_until(warm + steady)
            out["steady"] = rates(steady, n)
            COUNTS.reset()
            sim.requeue(requeue, 30.0)
            sim.run_until(sim.t + 60.0)
            out["requeue_storm"] = rates(60.0, n)
            COUNTS.reset()
            start = sim.t
            sim.finish(30.0)
            cap = 30.0 + 3 * max(w.wait_interval() for w in sim.workers) + 30.0
            while sim.t - start < cap and not all(w.exited for w in sim.workers if w.waits()):
                sim.run_until(sim.t + 5.0)
            out["end_of_run"] = rates(sim.t - start, n)
            out["end_of_run"]["seconds"] = round(sim.t - start, 1)
            COUNTS.on = False
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def verdict(result: dict[str, Any]) -> str:
    steady = result["steady"]["ops_per_s"]
    bursts = max(result[p]["peak_ops_in_a_second"] for p in ("requeue_storm", "end_of_run"))
    bursts = max(bursts, result["steady"]["peak_ops_in_a_second"])
    scale = 1000 / result["workers"]
    ok = steady <= BUDGET_STEADY and bursts <= BUDGET_BURST
    where = "" if result["workers"] == 1000 else f" (budget stated for 1,000 workers; x{scale:g})"
    return f"{'MET' if ok else 'MISSED'}{where}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 8, 16, 1000])
    ap.add_argument(
        "--readers", type=int, default=0, help="workers that scan (a sample; 0 = every one)"
    )
    ap.add_argument(
        "--baseline-readers",
        type=int,
        default=50,
        help="the sample for the baseline (whose every scan reads every entry: slow at N=1,000)",
    )
    ap.add_argument("--steady", type=float, default=120.0, help="simulated seconds")
    ap.add_argument("--requeue", type=float, default=0.1, help="fraction requeued at once")
    ap.add_argument("--baseline", action="store_true", help="also run the code before issue 16")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    for n in args.workers:
        for baseline in [True, False] if args.baseline else [False]:
            readers = args.baseline_readers if baseline else args.readers
            r = measure(n, readers or n, baseline, args.steady, args.requeue)
            r["readers"] = min(readers or n, n)
            results.append(r)
            line = "  ".join(
                f"{phase}={r[phase]['ops_per_s']:.0f}/s ({r[phase]['ops_per_s_per_worker']:.2f}"
                f"/worker, peak {r[phase]['peak_ops_in_a_second']:.0f}/s)"
                for phase in ("steady", "requeue_storm", "end_of_run")
            )
            print(f"N={n:5d} {r['code']:8s} {line}  budget {verdict(r)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
