"""Child processes of a launcher: start with a log file, stop by PID, show a log's tail."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


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
