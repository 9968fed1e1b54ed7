"""Aggregate the per-worker status files of a run for ``matrixhpc status`` and progress bars."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matrixhpc.files import JsonDir, read_json
from matrixhpc.registry import Registry

SUMMED = (
    "admitted",
    "done",
    "ok",
    "failed",
    "in_flight",
    "active",
    "queued",
    "steps",
    "sent",
    "received",
    "dropped_frames",
    "duplicates",
    "reissued",
    "renewed",
    "redriven",
    "resent",
    "rerouted",
    "tokens_in",
    "tokens_out",
    "row_errors",
    "held_turns",
    "written_here",
    "turns_written",
    "tasks_per_s",
    "tokens_per_s",
    "steps_per_s",
)


CLIENT_COLUMNS = ("requests", "failures", "in_flight", "waiting", "external", "cooldown")


@dataclass
class RunStatus:
    run_dir: Path
    run: dict[str, Any]
    workers: list[dict[str, Any]]
    replicas: dict[str, list[dict[str, Any]]]
    totals: dict[str, float] = field(default_factory=dict)
    roles: dict[str, dict[str, float]] = field(default_factory=dict)
    clients: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def expected(self) -> int | None:
        total = self.run.get("total_tasks")
        return None if total is None else int(total)

    def span(self, now: float | None = None) -> float | None:
        """Seconds since the latest launch (or resume) until the run finished, or now."""
        launched = self.run.get("launched", self.run.get("started"))
        if not isinstance(launched, (int, float)):
            return None
        end = self.run.get("finished") if self.run.get("state") == "finished" else None
        end = end if isinstance(end, (int, float)) else (time.time() if now is None else now)
        return max(end - launched, 1e-9)

    def mean_task_rate(self, now: float | None = None) -> float | None:
        """Tasks written per second since the latest launch: the mean, not a window, so
        a slow multi-turn run is not shown at 0.0 between two finished tasks, and a
        finished run shows what it averaged."""
        span = self.span(now)
        if span is None:
            return None
        done = self.totals.get("done", 0.0) - float(self.run.get("done_at_launch", 0))
        return max(done, 0.0) / span

    def turns_per_task(self) -> float | None:
        """Mean turns of the tasks written so far by the live processes."""
        written = self.totals.get("written_here", 0.0)
        return self.totals.get("turns_written", 0.0) / written if written else None

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the work done so far, counted in turns: the tasks still to
        write times the mean turns of a finished task, less the turns the unfinished
        ones have already taken, at the mean turn rate since the latest launch. (Counted
        in whole tasks, a run that admits all its tasks at once would show nothing until
        they all finish together.) None until a first task is written."""
        per_task, span = self.turns_per_task(), self.span(now)
        if self.expected is None or per_task is None or span is None:
            return None
        t = self.totals
        done, at_launch = t.get("done", 0.0), float(self.run.get("done_at_launch", 0))
        held = t.get("held_turns", 0.0)
        work_now = done * per_task + held
        rate = (work_now - at_launch * per_task) / span
        if rate <= 0:
            return None
        return max(0.0, self.expected * per_task - work_now) / rate


class StatusReader:
    """Repeated looks at one run (progress bars, watchers, ``status --watch``): the status
    directory and the registry are read incrementally (a ``stat`` when nothing changed,
    only replaced files re-read; see :class:`matrixhpc.files.JsonDir`)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        # status files are rewritten at least every 30 s anyway: the re-read that guards
        # against reused inode numbers need not be more frequent (N / 30 reads/s)
        self.files = JsonDir(run_dir / "status", full_every=30.0)
        self.registry = Registry(run_dir / "registry", scan_interval=0.0)

    def read(self) -> RunStatus:
        return read_status(self.run_dir, self)


def read_status(run_dir: Path, reader: StatusReader | None = None) -> RunStatus:
    run = read_json(run_dir / "run.json") or {}
    reader = reader or StatusReader(run_dir)
    files = reader.files.read()
    workers = [w for _, w in sorted(files.items()) if isinstance(w, dict)]
    registry = reader.registry
    replicas: dict[str, list[dict[str, Any]]] = {}
    llm_root = run_dir / "registry" / "llm"
    if llm_root.is_dir():
        for service in sorted(os.listdir(llm_root)):
            replicas[service] = list(registry.entries(f"llm/{service}").values())
    status = RunStatus(run_dir, run, workers, replicas)
    status.totals = {k: sum(float(w.get(k, 0)) for w in workers) for k in SUMMED}
    status.roles = _merge_roles(workers)
    status.clients = _merge_clients(workers)
    return status


def _merge_roles(workers: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    merged: dict[str, dict[str, float]] = {}
    for w in workers:
        for role, acc in (w.get("roles") or {}).items():
            into = merged.setdefault(role, {})
            for key, value in acc.items():
                into[key] = into.get(key, 0.0) + float(value)
    return merged


def _merge_clients(workers: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per service and replica, the workers' LLM clients summed: requests, failures, what
    is in flight at the server now and what waits in the clients for one of the
    replica's ``max_concurrency`` slots; the longest cooldown and the largest queue the
    server holds for others."""
    merged: dict[str, dict[str, dict[str, float]]] = {}
    for w in workers:
        for service, svc in (w.get("llm") or {}).items():
            replicas = merged.setdefault(service, {})
            for name, rep in (svc.get("replicas") or {}).items():
                into = replicas.setdefault(name, dict.fromkeys(CLIENT_COLUMNS, 0.0))
                for key in ("requests", "failures"):
                    into[key] += float(rep.get(key, 0))
                in_flight = float(rep.get("inflight", 0))
                into["in_flight"] += in_flight  # sent, the answer not back yet
                into["waiting"] += max(0.0, float(rep.get("outstanding", 0)) - in_flight)
                for key in ("cooldown", "external"):
                    into[key] = max(into[key], float(rep.get(key, 0)))
    return merged


def journal_error(worker: dict[str, Any]) -> str | None:
    """The journal failure a worker reported (``journal.error`` in its status file): the
    path and the reason, e.g. a full disk. None when its journal is healthy."""
    journal = worker.get("journal")
    error = journal.get("error") if isinstance(journal, dict) else None
    return str(error) if error else None


def _health_lines(status: RunStatus) -> list[str]:
    """What went wrong or is being waited for: faults that stopped a worker, journal
    errors, tasks waiting for a role's workers, and the recovery counters."""
    lines: list[str] = []
    for w in status.workers:
        name = w.get("worker", "?")
        if (error := journal_error(w)) is not None:
            lines.append(f"journal error on {name}: {error}")
        if w.get("fault"):
            lines.append(f"{name} stopped (resumable): {w['fault']}")
    waiting: dict[str, int] = {}
    for w in status.workers:
        for role, n in (w.get("waiting_for_role") or {}).items():
            waiting[role] = waiting.get(role, 0) + int(n)
    lines += [
        f"{n} task(s) waiting for a live worker hosting {r!r}" for r, n in waiting.items() if n
    ]
    t = status.totals
    if t.get("redriven"):
        lines.append(f"liveness audit re-drove {int(t['redriven'])} stranded task(s): see logs/")
    lines.append(
        f"recovery: reissued={int(t.get('reissued', 0))} resent={int(t.get('resent', 0))}"
        f" rerouted={int(t.get('rerouted', 0))} duplicates={int(t.get('duplicates', 0))}"
        f" dropped_frames={int(t.get('dropped_frames', 0))}"
    )
    return lines


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(seconds))


def _rate_line(status: RunStatus) -> str:
    """Mean rate since the launch (and the ETA from it); the last 10 s for live runs."""
    t = status.totals
    mean = status.mean_task_rate()
    line = f"rate {'-' if mean is None else f'{mean:.3g}'} tasks/s (mean since launch)"
    if status.run.get("state") != "finished":
        line += (
            f"  now: {t.get('tokens_per_s', 0):.0f} out tok/s {t.get('steps_per_s', 0):.1f}"
            f" turns/s  eta {_fmt_eta(status.eta())}"
        )
    per_task = status.turns_per_task()
    if per_task is not None:
        line += f"  {per_task:.1f} turns/task"
    return line


def render(status: RunStatus) -> str:
    t = status.totals
    run = status.run
    expected = status.expected
    lines = [
        f"run {status.run_dir}  state={run.get('state', '?')}  launcher={run.get('launcher', '?')}",
        f"tasks {int(t.get('done', 0))}/{expected if expected is not None else '?'}"
        f"  ok={int(t.get('ok', 0))} failed={int(t.get('failed', 0))}"
        f"  in_flight={int(t.get('in_flight', 0))}  bad_rows={int(t.get('row_errors', 0))}",
        _rate_line(status),
        "",
        f"{'worker':8} {'group':8} {'host':14} {'pid':>7} {'adm':>6} {'done':>6} "
        f"{'fail':>5} {'fly':>5} {'act':>5} {'queue':>5} {'steps':>7} {'tok/s':>7}",
    ]
    lines += [
        f"{w.get('worker', '?'):8} {w.get('group', '?'):8} {str(w.get('host', '?'))[:14]:14} "
        f"{w.get('pid', 0):>7} {w.get('admitted', 0):>6} {w.get('done', 0):>6} "
        f"{w.get('failed', 0):>5} {w.get('in_flight', 0):>5} {w.get('active', 0):>5} "
        f"{w.get('queued', 0):>5} {w.get('steps', 0):>7} {w.get('tokens_per_s', 0):>7.0f}"
        for w in status.workers
    ]
    lines += _health_lines(status)
    lines += [
        "",
        f"{'role':12} {'steps':>8} {'tok in':>10} {'tok out':>10} {'avg s':>7} {'errors':>6}",
    ]
    for role, acc in sorted(status.roles.items()):
        steps = max(acc.get("steps", 0), 1)
        lines.append(
            f"{role:12} {acc.get('steps', 0):>8.0f} {acc.get('tokens_in', 0):>10.0f} "
            f"{acc.get('tokens_out', 0):>10.0f} {acc.get('seconds', 0) / steps:>7.3f} "
            f"{acc.get('errors', 0):>6.0f}"
        )
    for service, entries in status.replicas.items():
        names = ", ".join(f"{e['name']}@{e.get('url', '?')}" for e in entries) or "none live"
        lines.append(f"service {service}: {len(entries)} live replica(s): {names}")
    return "\n".join(lines + _render_clients(status.clients) + _render_sandboxes(status.workers))


SANDBOX_COLUMNS = ("size", "live", "busy", "parked", "starting", "failed", "starts", "execs")


def _render_sandboxes(workers: list[dict[str, Any]]) -> list[str]:
    """Each worker's sandbox pools: slots, what they do, instance starts, execs, limit hits."""
    rows = [
        (w.get("worker", "?"), name, pool)
        for w in workers
        for name, pool in sorted((w.get("sandboxes") or {}).items())
    ]
    if not rows:
        return []
    lines = [
        "",
        f"{'sandbox':16} {'worker':8} "
        + " ".join(f"{c:>8}" for c in SANDBOX_COLUMNS)
        + "  limit hits / enforcement",
    ]
    for worker, name, pool in rows:
        hits = " ".join(f"{k}={v}" for k, v in (pool.get("limit_hits") or {}).items() if v)
        lines.append(
            f"{name[:16]:16} {worker:8} "
            + " ".join(f"{pool.get(c, 0):>8}" for c in SANDBOX_COLUMNS)
            + f"  {hits or 'none'} / {pool.get('backend', '?')}: {pool.get('enforcement', '?')}"
        )
    return lines


def _render_clients(clients: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """The replicas as the workers' clients see them (``external``: held for others,
    from the servers' queue metrics when ``queue_metrics`` is on)."""
    lines: list[str] = []
    for service, replicas in sorted(clients.items()):
        lines += [
            "",
            f"{service + ' replica':16} {'requests':>9} {'failed':>7} {'in flight':>9} "
            f"{'waiting':>7} {'external':>8} {'cooldown s':>10}",
        ]
        for name, rep in sorted(replicas.items()):
            lines.append(
                f"{name:16} {rep['requests']:>9.0f} {rep['failures']:>7.0f} "
                f"{rep['in_flight']:>9.0f} {rep['waiting']:>7.0f} {rep['external']:>8.0f} "
                f"{rep['cooldown']:>10.1f}"
            )
    return lines
