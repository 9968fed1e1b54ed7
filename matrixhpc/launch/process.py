"""Child processes of a launcher: start with a log file, stop by PID, show a log's tail.

A PID alone does not name a process for long: after the process exits the kernel
hands the number to another one, and a run directory on a shared filesystem is
seen from several login nodes, each with its own PIDs. So what a launcher records
in ``pids.json`` is (host, PID, start time) — the start time in clock ticks since
boot, field 22 of ``/proc/<pid>/stat`` — and ``stop``/``resume`` signal a recorded
process only when all three still match.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Child:
    name: str
    kind: str  # "service" | "worker"
    proc: subprocess.Popen[bytes]
    log: Path
    group: str = ""  # the service a replica belongs to

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> int | None:
        return self.proc.poll()


def matrixhpc_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "matrixhpc", *args]


def spawn(
    name: str,
    kind: str,
    argv: list[str],
    log: Path,
    env: dict[str, str] | None = None,
    group: str = "",
) -> Child:
    """Start a child in its own session: a terminal's Ctrl-C reaches only the launcher,
    which then stops its children in order instead of all of them dying at once."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Child(name, kind, proc, log, group)


def stop(children: list[Child], timeout: float = 15.0) -> None:
    """SIGTERM every live child, wait, then SIGKILL the stragglers."""
    for child in children:
        if child.exited() is None:
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in children:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            child.proc.wait(remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.proc.kill()
            child.proc.wait()


def tail(path: Path, lines: int = 20) -> str:
    try:
        data = path.read_bytes()[-16384:].decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True if ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_pids(pids: list[int], timeout: float = 20.0) -> int:
    """SIGTERM processes we did not start in this process (a previous launch), then
    SIGKILL what is left after ``timeout``; returns how many were alive."""
    live = [p for p in pids if pid_alive(p)]
    for pid in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(pid_alive(p) for p in live) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in live:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(live)


GONE = "it is gone"


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot: /proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count after it
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # fields[0] is field 3 (state), so field 22 is fields[19]
    except (IndexError, ValueError):
        return None


def identity(pid: int) -> dict[str, Any]:
    """What ``pids.json`` records of one process of this host: its PID and start time."""
    return {"pid": pid, "start": start_time(pid)}


@dataclass(frozen=True)
class Recorded:
    """A process as a launcher recorded it: name, PID, host and start time."""

    name: str
    pid: int
    host: str | None
    start: int | None

    def mismatch(self) -> str | None:
        """None when this is still the recorded process, running here; else why it is not."""
        if self.host is not None and self.host != socket.gethostname():
            return f"it runs on host {self.host}, not this one ({socket.gethostname()})"
        if not pid_alive(self.pid):
            return GONE
        if self.start is None:
            return "its start time was not recorded, so it cannot be told from a reused PID"
        if start_time(self.pid) != self.start:
            return f"it is gone (PID {self.pid} now belongs to another process)"
        return None


def read_recorded(data: dict[str, Any]) -> list[Recorded]:
    """The launcher and its children from a ``pids.json`` document."""
    host = data.get("host")
    found = []
    if data.get("launcher"):
        found.append(Recorded("launcher", int(data["launcher"]), host, data.get("launcher_start")))
    found += [
        Recorded(str(child.get("name")), int(child["pid"]), host, child.get("start"))
        for child in data.get("children", [])
    ]
    return found


def stop_recorded(procs: list[Recorded], timeout: float = 20.0) -> tuple[int, list[str]]:
    """Stop the recorded processes that are still ours: (how many were, a note on every
    other one that is not simply gone — another host's, or a PID now reused)."""
    ours: list[int] = []
    notes: list[str] = []
    for proc in procs:
        why = proc.mismatch()
        if why is None:
            ours.append(proc.pid)
        elif why != GONE:
            notes.append(f"{proc.name} (pid {proc.pid}) not signalled: {why}")
    return stop_pids(ours, timeout), notes
