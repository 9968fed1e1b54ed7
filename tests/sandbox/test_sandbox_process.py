"""The bounded process under every backend: real subprocesses, real signals."""

from __future__ import annotations

import sys
import time

import pytest

from matrixhpc.sandbox.process import run_bounded

pytestmark = pytest.mark.asyncio


async def test_stdin_reaches_the_process_and_output_is_captured() -> None:
    done = await run_bounded(
        ["sh", "-c", "tr a-z A-Z; echo err >&2; exit 3"],
        stdin=b"hello",
        wall_s=10,
        grace_s=1,
        output_bytes=100,
    )
    assert (done.returncode, done.timed_out) == (3, False)
    assert (done.stdout.bytes(), done.stderr.bytes()) == (b"HELLO", b"err\n")


async def test_wall_time_sends_term_then_kill_after_the_grace() -> None:
    # the process ignores TERM: only the KILL after the grace ends it
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(100)"
    )
    started = time.monotonic()
    done = await run_bounded(
        [sys.executable, "-c", script], stdin=None, wall_s=1.0, grace_s=0.5, output_bytes=100
    )
    elapsed = time.monotonic() - started
    assert done.timed_out
    assert done.returncode == -9
    assert 1.4 < elapsed < 5.0
    assert done.stdout.bytes() == b"ready\n"


async def test_a_term_that_is_honoured_needs_no_kill() -> None:
    done = await run_bounded(["sleep", "100"], stdin=None, wall_s=0.3, grace_s=5, output_bytes=10)
    assert (done.timed_out, done.returncode) == (True, -15)
    assert done.duration < 3


async def test_a_background_child_holding_the_pipes_does_not_hold_the_exec() -> None:
    done = await run_bounded(
        ["sh", "-c", "setsid sleep 3 & echo started"],
        stdin=None,
        wall_s=10,
        grace_s=1,
        output_bytes=100,
    )
    assert (done.returncode, done.timed_out) == (0, False)
    assert done.stdout.bytes() == b"started\n"
    assert done.duration < 3


async def test_a_program_that_ignores_its_stdin_is_not_an_error() -> None:
    done = await run_bounded(
        ["true"], stdin=b"x" * 10_000_000, wall_s=10, grace_s=1, output_bytes=10
    )
    assert done.returncode == 0


async def test_a_timeout_with_a_child_holding_the_pipes_still_ends() -> None:
    done = await run_bounded(
        ["sh", "-c", "setsid sleep 3 & sleep 30"],
        stdin=None,
        wall_s=0.5,
        grace_s=0.5,
        output_bytes=100,
    )
    assert (done.timed_out, done.returncode) == (True, -15)
    assert done.duration < 3
