"""Launcher children: liveness by PID (zombies are gone), stopping by PID, log tails, and
recorded processes signalled only while host, PID and start time all still match."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from matrixhpc.cli import main
from matrixhpc.launch.process import (
    Recorded,
    identity,
    pid_alive,
    read_recorded,
    spawn,
    start_time,
    stop,
    stop_pids,
    stop_recorded,
    tail,
)

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
        assert child.exited() is None
        assert pid_alive(child.pid)
        assert os.getsid(child.pid) == child.pid  # its own session: Ctrl-C is not sent to it
        stop([child], timeout=5)
        assert child.exited() == -signal.SIGTERM
    finally:
        if child.exited() is None:
            child.proc.kill()
            child.proc.wait()


# ------------------------------------------------------------- recorded processes (pids.json)


def test_start_time_is_field_22_of_proc_stat(procs: list[subprocess.Popen[bytes]]) -> None:
    p = _start(procs, ["sleep", "30"])
    start = start_time(p.pid)
    assert start is not None
    assert start >= (start_time(os.getpid()) or 0)
    p.kill()
    p.wait()
    assert start_time(p.pid) is None


def test_only_the_recorded_process_itself_is_signalled(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    mine = _start(procs, ["sleep", "30"])
    reused = _start(procs, ["sleep", "30"])  # stands for a PID the kernel handed on
    elsewhere = _start(procs, ["sleep", "30"])
    start = start_time(reused.pid)
    assert start is not None
    recorded = [
        Recorded("w000", mine.pid, socket.gethostname(), start_time(mine.pid)),
        Recorded("w001", reused.pid, socket.gethostname(), start - 1),
        Recorded("llm-0", elsewhere.pid, "another-login-node", start_time(elsewhere.pid)),
    ]
    count, notes = stop_recorded(recorded, timeout=5)
    assert count == 1
    assert mine.wait(5) == -signal.SIGTERM
    assert reused.poll() is None
    assert elsewhere.poll() is None
    assert notes == [
        f"w001 (pid {reused.pid}) not signalled: it is gone "
        f"(PID {reused.pid} now belongs to another process)",
        f"llm-0 (pid {elsewhere.pid}) not signalled: it runs on host another-login-node, "
        f"not this one ({socket.gethostname()})",
    ]


def test_pids_json_of_a_launch_reads_back(tmp_path: Path) -> None:
    data = {
        "host": "node1",
        "launcher": 10,
        "launcher_start": 5,
        "children": [{"name": "llm-0", "kind": "service", "pid": 11, "start": 6}],
    }
    assert read_recorded(data) == [
        Recorded("launcher", 10, "node1", 5),
        Recorded("llm-0", 11, "node1", 6),
    ]
    # written before start times were recorded: never signalled (a PID alone proves nothing)
    legacy = Recorded("w000", os.getpid(), None, None)
    assert "start time was not recorded" in str(legacy.mismatch())


def test_matrixhpc_stop_leaves_a_reused_pid_alone(
    tmp_path: Path, procs: list[subprocess.Popen[bytes]]
) -> None:
    stranger = _start(procs, ["sleep", "30"])
    ours = _start(procs, ["sleep", "30"])
    (tmp_path / "run.json").write_text(json.dumps({"launcher": "local"}))
    pids = {
        "host": socket.gethostname(),
        "launcher": stranger.pid,
        "launcher_start": (start_time(stranger.pid) or 0) + 1,  # not the launcher we started
        "children": [{"name": "w000", "kind": "worker", **identity(ours.pid)}],
    }
    (tmp_path / "pids.json").write_text(json.dumps(pids))
    result = CliRunner().invoke(main, ["stop", str(tmp_path), "--timeout", "5"])
    assert result.exit_code == 0, result.output
    assert f"stopped 1 process(es) of {tmp_path}" in result.stdout
    assert f"launcher (pid {stranger.pid}) not signalled" in result.stderr
    assert ours.wait(5) == -signal.SIGTERM
    assert stranger.poll() is None
