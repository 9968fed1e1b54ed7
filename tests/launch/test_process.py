"""Launcher children: liveness by PID (zombies are gone), stopping by PID, log tails."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrixhpc.launch.process import pid_alive, spawn, stop, stop_pids, tail

IGNORES_TERM = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 30"]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def _start(procs: list[subprocess.Popen[bytes]], argv: list[str]) -> subprocess.Popen[bytes]:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    procs.append(p)
    return p


def _ready(p: subprocess.Popen[bytes]) -> None:
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"  # the TERM handler is in place


def test_pid_alive_for_a_running_process(procs: list[subprocess.Popen[bytes]]) -> None:
    assert pid_alive(os.getpid())
    p = _start(procs, ["sleep", "30"])
    assert pid_alive(p.pid)


def test_a_zombie_counts_as_gone(procs: list[subprocess.Popen[bytes]]) -> None:
    p = _start(procs, ["true"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped
    stat = Path(f"/proc/{p.pid}/stat").read_text()
    assert stat.rpartition(")")[2].split()[0] == "Z"  # it really is a zombie
    assert pid_alive(p.pid) is False
    assert p.wait() == 0
    assert pid_alive(p.pid) is False  # reaped: no such process


def test_stop_pids_terminates_then_kills(procs: list[subprocess.Popen[bytes]]) -> None:
    polite = _start(procs, ["sleep", "30"])
    stubborn = _start(procs, IGNORES_TERM)
    _ready(stubborn)
    gone = _start(procs, ["true"])
    gone.wait()
    start = time.monotonic()
    assert stop_pids([polite.pid, stubborn.pid, gone.pid], timeout=0.5) == 2
    elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 5.0  # waited for the stubborn one, then gave up on it
    assert polite.wait(5) == -signal.SIGTERM
    assert stubborn.wait(5) == -signal.SIGKILL


def test_stop_pids_returns_once_everything_exited(procs: list[subprocess.Popen[bytes]]) -> None:
    ps = [_start(procs, ["sleep", "30"]) for _ in range(3)]
    start = time.monotonic()
    assert stop_pids([p.pid for p in ps], timeout=20.0) == 3
    assert time.monotonic() - start < 5.0  # not the full timeout
    assert [p.wait(5) for p in ps] == [-signal.SIGTERM] * 3


def test_stop_pids_of_nothing_alive(procs: list[subprocess.Popen[bytes]]) -> None:
    assert stop_pids([]) == 0
    p = _start(procs, ["true"])
    p.wait()
    assert stop_pids([p.pid], timeout=0.1) == 0


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert tail(log, 3) == "line 97\nline 98\nline 99"
    assert tail(log) == "\n".join(f"line {i}" for i in range(80, 100))
    assert tail(tmp_path / "missing.log") == "(no log)"


def test_tail_of_a_big_log_with_bad_bytes(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_bytes(b"x" * 1_000_000 + b"\nend \xff\xfe\n")
    assert tail(log, 1) == "end \ufffd\ufffd"
    assert len(tail(log, 5)) <= 16384


def test_spawn_logs_and_stop(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "svc.log"
    child = spawn(
        "svc",
        "service",
        ["sh", "-c", "echo hello $GREETING; exec sleep 30"],
        log,
        env={"GREETING": "world"},
    )
    try:
        deadline = time.monotonic() + 5
        while "hello world" not in tail(log) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tail(log) == "hello world"
        assert child.exited() is None and pid_alive(child.pid)
        assert os.getsid(child.pid) == child.pid  # its own session: Ctrl-C is not sent to it
        stop([child], timeout=5)
        assert child.exited() == -signal.SIGTERM
    finally:
        if child.exited() is None:
            child.proc.kill()
            child.proc.wait()
