"""The local launcher: LLM services and workers as subprocesses of ``matrixhpc run``.

Order: services first (a worker with no live replica would only wait), then
workers; the launcher watches them, draws progress from their status files, and
on the first worker failure or on Ctrl-C/SIGTERM/SIGHUP stops everything it
started. Its children live in their own sessions, so nothing but this launcher
stops them: whatever ends it — a signal, a bug, a closed terminal or pipe
(:mod:`matrixhpc.launch.console`) — must stop them first.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from types import FrameType
from typing import Any

from typing_extensions import override

from matrixhpc.config import RunConfig
from matrixhpc.data.manifest import write_manifest
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.launch.completion import forget_workers, run_finished, worker_name
from matrixhpc.launch.console import say, use_log
from matrixhpc.launch.diagnosis import exit_reason
from matrixhpc.launch.launcher import JobState, Launcher, Stopped
from matrixhpc.launch.outcome import summarise
from matrixhpc.launch.process import (
    Child,
    Recorded,
    identity,
    matrixhpc_argv,
    read_recorded,
    spawn,
    stop,
    stop_recorded,
    tail,
)
from matrixhpc.launch.progress import Progress
from matrixhpc.launch.runinfo import launch_marks, record_run
from matrixhpc.launch.stall import stall_warning
from matrixhpc.registry import Registry
from matrixhpc.rundir import RunDir

POLL = 0.5
STARTUP_GRACE = 15.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # SIGHUP: the terminal closed


class LaunchError(RuntimeError):
    """A process of the run failed; the message carries the tail of its log."""


class Interrupted(Exception):
    pass


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _already_stopping(signum: int, _frame: FrameType | None) -> None:
    """A second Ctrl-C (or SIGTERM) while the run stops: stopping it is already under way,
    and cutting it short would leave children running and run.json unwritten."""
    say(f"[matrixhpc] {signal.Signals(signum).name}: already stopping, please wait")


class LocalLauncher:
    def __init__(self, rd: RunDir, cfg: RunConfig) -> None:
        self.rd = rd
        self.cfg = cfg
        self.children: list[Child] = []
        self._reported: set[str] = set()
        self._restarts: dict[str, int] = {}
        self.registry = Registry(rd.registry)

    # ---------------------------------------------------------------- run

    def run(self) -> int:
        previous = {s: signal.signal(s, _on_signal) for s in STOP_SIGNALS}
        use_log(self.rd.logs / "launcher.log")
        me = identity(os.getpid())
        run = record_run(
            self.rd,
            self.cfg,
            "local",
            state="starting",
            **launch_marks(self.rd),
            launcher_pid=me["pid"],
            launcher_start=me["start"],
            launcher_host=socket.gethostname(),
        )
        try:
            return self._supervise(int(run["total_tasks"]))
        except BaseException:
            stop(self.children)  # a bug must not leave servers and workers without a parent
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, total: int) -> int:
        try:
            self.start_services()
            self.start_workers()
            self._record(state="running")
            self.watch(total)
        except Interrupted as exc:
            say(f"\n[matrixhpc] {exc}: stopping the run")
            return self._end("stopped", 130)
        except LaunchError as exc:
            say(f"[matrixhpc] {exc}")
            return self._end("failed", 1)
        manifest = self._shutdown("finished")
        code, lines = summarise(manifest, self.cfg.run.max_failed_fraction)
        for line in lines:
            say(f"[matrixhpc] {line}")
        return code

    def _end(self, state: str, code: int) -> int:
        self._shutdown(state)
        say(f"[matrixhpc] continue with: matrixhpc resume {self.rd.root}")
        return code

    def _shutdown(self, state: str) -> dict[str, Any]:
        for sig in STOP_SIGNALS:  # run() restores the previous handlers afterwards
            signal.signal(sig, _already_stopping)
        stop(self.children)
        try:
            manifest = write_manifest(self.rd.output, self.rd.run_info, self.cfg, state)
        except OSError as exc:  # e.g. a full disk: resume writes it later
            say(f"[matrixhpc] cannot write the manifest: {exc}")
            manifest = {"records": None}
        self._record(state=state, finished=time.time(), records=manifest["records"])
        return manifest

    def _record(self, **fields: Any) -> None:
        """Update run.json; a write that fails (a full disk) is said, never fatal: the run's
        processes are what matter, and the next write or a resume catches up."""
        try:
            record_run(self.rd, self.cfg, "local", **fields)
        except OSError as exc:
            say(f"[matrixhpc] cannot update {self.rd.run_info}: {exc}")

    def _save_pids(self) -> None:
        """Who to stop later (``matrixhpc stop``, ``resume``): host, PIDs and start times."""
        children = [{"name": c.name, "kind": c.kind, **identity(c.pid)} for c in self.children]
        pids = {
            "host": socket.gethostname(),
            "launcher": os.getpid(),
            "launcher_start": identity(os.getpid())["start"],
            "children": children,
        }
        try:
            atomic_write_json(self.rd.pids, pids)
        except OSError as exc:
            say(f"[matrixhpc] cannot update {self.rd.pids}: {exc}")

    # ---------------------------------------------------------------- services

    def start_services(self) -> None:
        for name, svc in self.cfg.services.items():
            for k in range(svc.replicas):
                argv = matrixhpc_argv(
                    "serve",
                    svc.engine,
                    "--run-dir",
                    str(self.rd.root),
                    "--service",
                    name,
                    "--replica",
                    str(k),
                )
                log = self.rd.logs / f"{name}-{k}.log"
                child = spawn(f"{name}-{k}", "service", argv, log, group=name)
                self.children.append(child)
        self._save_pids()
        for name, svc in self.cfg.services.items():
            self._wait_ready(name, svc.replicas, svc.startup_timeout)

    def _wait_ready(self, service: str, replicas: int, timeout: float) -> None:
        registry = Registry(self.rd.registry)
        # the serve process enforces the start-up timeout and explains a failure; the
        # grace period lets its explanation arrive before the launcher gives up itself
        deadline = time.monotonic() + timeout + STARTUP_GRACE
        while True:
            self._check_alive("service", " during start-up")
            live = registry.entries(f"llm/{service}", fresh=True)
            ours = {c.pid for c in self.children if c.group == service}
            ready = [e for e in live.values() if e.get("state") == "ready" and e.get("pid") in ours]
            if len(ready) >= replicas:  # entries left by an earlier launch do not count
                return
            if time.monotonic() > deadline:
                logs = "\n".join(
                    f"{c.log}:\n{tail(c.log)}" for c in self.children if c.group == service
                )
                raise LaunchError(f"service {service!r}: not ready after {timeout:.0f}s\n{logs}")
            time.sleep(0.1)

    # ---------------------------------------------------------------- workers

    def start_workers(self) -> None:
        for i in range(self.cfg.workers.count):
            self.children.append(self._spawn_worker(i))
        self._save_pids()

    def _spawn_worker(self, index: int) -> Child:
        argv = matrixhpc_argv("worker", "--run-dir", str(self.rd.root), "--index", str(index))
        name = worker_name(index)
        return spawn(name, "worker", argv, self.rd.logs / f"{name}.log", group=str(index))

    def _restart_crashed(self) -> None:
        """A crashed worker comes back with the same identity and replays its journal
        (what Slurm's requeue does on a cluster), up to ``workers.restarts`` times."""
        for n, child in enumerate(self.children):
            code = child.exited()
            if child.kind != "worker" or code in (None, 0):
                continue
            used = self._restarts.get(child.name, 0)
            if used >= self.cfg.workers.restarts:
                self._check_alive("worker")
            self._restarts[child.name] = used + 1
            reason = exit_reason(self.rd.root, child.name)
            say(
                f"\n[matrixhpc] worker {child.name} exited with code {code}"
                f"{f' ({reason})' if reason else ''}; restarting it "
                f"({used + 1}/{self.cfg.workers.restarts})"
            )
            self.children[n] = self._spawn_worker(int(child.group))
            self._save_pids()

    def watch(self, total: int) -> None:
        progress = Progress(self.rd.root, total, stall_warning(self.cfg))
        try:
            while True:
                codes = [c.exited() for c in self.children if c.kind == "worker"]
                if all(code == 0 for code in codes):
                    break
                self._check_services()
                self._restart_crashed()
                progress.update()
                time.sleep(POLL)
            progress.update(final=True)
        finally:
            progress.close()

    def _check_services(self) -> None:
        """A dead replica is survivable (clients fail over); a service with none left is not.

        Servers stop by themselves once every worker has declared itself done, which
        can be a moment before the last worker process is gone: not a failure."""
        for child in self.children:
            if child.kind != "service" or child.exited() is None:
                continue
            if child.exited() == 0 and run_finished(self.registry, self.cfg.workers.count):
                continue
            if child.name not in self._reported:
                self._reported.add(child.name)
                say(
                    f"\n[matrixhpc] replica {child.name} exited with code {child.exited()}; "
                    "its requests fail over to the other replicas"
                )
            siblings = [c for c in self.children if c.group == child.group]
            if all(c.exited() is not None for c in siblings):
                raise LaunchError(
                    f"every replica of service {child.group!r} has exited; last lines of "
                    f"{child.log}:\n{tail(child.log)}"
                )

    def _check_alive(self, kind: str, phase: str = "") -> None:
        for child in self.children:
            code = child.exited()
            if child.kind == kind and code is not None and (kind == "service" or code != 0):
                reason = exit_reason(self.rd.root, child.name) if kind == "worker" else ""
                raise LaunchError(
                    f"{kind} {child.name} exited with code {code}{phase}"
                    f"{f' ({reason})' if reason else ''}; "
                    f"last lines of {child.log}:\n{tail(child.log)}"
                )


def launch_local(cfg: RunConfig, run_dir: Path) -> int:
    rd = RunDir(run_dir)
    rd.create(cfg)
    say(f"[matrixhpc] run directory: {run_dir}")
    return LocalLauncher(rd, cfg).run()


def _recorded(rd: RunDir) -> list[Recorded]:
    """The launcher and children the last launch recorded in ``pids.json``."""
    return read_recorded(read_json(rd.pids) or {})


def prepare_resume(rd: RunDir) -> None:
    """Leftovers of the last launch are stopped (their state is journaled) — only those
    still ours, by host and start time — and its workers' "done" markers are removed,
    so that they cannot end the new launch's replicas (see ``forget_workers``)."""
    children = [p for p in _recorded(rd) if p.name != "launcher"]
    _, notes = stop_recorded(children)
    for note in notes:
        say(f"[matrixhpc] {note}")
    forget_workers(Registry(rd.registry))


def resume_local(rd: RunDir, cfg: RunConfig) -> int:
    """Continue a stopped or crashed run: services and every worker start again."""
    prepare_resume(rd)
    say(f"[matrixhpc] resuming {rd.root}")
    return LocalLauncher(rd, cfg).run()


class LocalBackend(Launcher):
    """The :class:`~matrixhpc.launch.launcher.Launcher` on this machine: the run's
    processes are children of ``matrixhpc run`` (or ``resume``), which supervises them
    until the end, so there is nothing to detach from and no scheduler to ask."""

    @override
    def submit(self, cfg: RunConfig, run_dir: Path, *, detach: bool = False) -> int:
        return launch_local(cfg, run_dir)

    @override
    def resume(self, rd: RunDir, cfg: RunConfig) -> int:
        return resume_local(rd, cfg)

    @override
    def stop(self, rd: RunDir, timeout: float) -> Stopped:
        """Only processes still ours: same host, same start time (a PID may have been reused)."""
        count, notes = stop_recorded(_recorded(rd), timeout)
        return Stopped(f"stopped {count} process(es)", notes)

    @override
    def job_states(self, rd: RunDir) -> list[JobState]:
        return []
