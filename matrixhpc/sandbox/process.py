"""One bounded process: wall time (TERM, then KILL after a grace), capped output, stdin.

Shared by every backend: what differs between bubblewrap and Apptainer is the argv that
enters the sandbox, not how the host side waits for it. The process runs in a session
of its own so that the signals reach everything it started on the host side (the
sandbox's pid namespace takes care of the rest). Output readers stop shortly after the
process exits even when a background child inside still holds the pipes open.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matrixhpc.sandbox.output import HeadTail

DRAIN_S = 0.2  # after the process exits, how long its pipes may still be read
KILL_WAIT_S = 10.0  # a KILLed process is reaped at once; past this something is badly wrong


@dataclass(slots=True)
class Finished:
    returncode: int | None  # None: it could not be reaped (never expected)
    timed_out: bool
    stdout: HeadTail
    stderr: HeadTail
    duration: float


async def run_bounded(
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    wall_s: float,
    grace_s: float,
    output_bytes: int,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Finished:
    """Run ``argv`` to its end or its wall time; raises OSError if it cannot be started."""
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
    )
    out, err = HeadTail(output_bytes), HeadTail(output_bytes)
    assert proc.stdout is not None
    assert proc.stderr is not None
    readers = [
        asyncio.ensure_future(out.drain(proc.stdout)),
        asyncio.ensure_future(err.drain(proc.stderr)),
    ]
    feeder = asyncio.ensure_future(_feed(proc, stdin))
    waiter = asyncio.ensure_future(proc.wait())
    try:
        timed_out = not await _exited(proc, waiter, started + wall_s)
        if timed_out:
            await _terminate(proc, waiter, grace_s)
        await asyncio.wait(readers, timeout=DRAIN_S)
    finally:
        for job in (*readers, feeder, waiter):
            job.cancel()
        await asyncio.gather(*readers, feeder, waiter, return_exceptions=True)
        if proc.returncode is None:  # cancelled from outside: leave nothing behind
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        # pipes a background child still holds: close our ends now, not at GC time
        # (asyncio has no public handle on the transport of a Process)
        transport = getattr(proc, "_transport", None)
        if transport is not None:
            transport.close()
    return Finished(proc.returncode, timed_out, out, err, time.monotonic() - started)


async def _exited(
    proc: asyncio.subprocess.Process, waiter: asyncio.Future[int], deadline: float
) -> bool:
    """Whether the process exited before ``deadline``. ``Process.wait`` also waits for its
    pipes to close, which a background child can put off for ever: past the first
    moments the return code (set at the exit itself) is polled, every 50 ms at most."""
    poll = 0.002
    while proc.returncode is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.wait([waiter], timeout=min(remaining, poll))
        poll = min(poll * 2, 0.05)
    return True


async def _feed(proc: asyncio.subprocess.Process, data: bytes | None) -> None:
    if data is None or proc.stdin is None:
        return
    # a program that exits without reading its input is not an error of the exec
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        proc.stdin.write(data)
        await proc.stdin.drain()
    with contextlib.suppress(OSError):
        proc.stdin.close()


async def _terminate(
    proc: asyncio.subprocess.Process, waiter: asyncio.Future[int], grace_s: float
) -> None:
    """TERM the process's group, KILL it after ``grace_s``, and see it reaped."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, KILL_WAIT_S)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        if await _exited(proc, waiter, time.monotonic() + wait):
            return
