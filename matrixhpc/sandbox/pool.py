"""The pool of one configured sandbox on one worker: slots leased to tasks and reused.

A task gets a slot the first time it needs the sandbox and keeps it (its files stay
there from one step to the next). When the task leaves the worker the lease is
*parked*: the slot keeps the task's files for ``keep_s`` seconds, in case the task comes
back (the runtime prefers sending it back here); a parked slot is also the first to be
taken back when every slot is in use. A finished task's slot is reset (its processes
stopped, its directories emptied) and given to the next task: the pool never starts
more than ``pool`` sandboxes, and starts them only when needed (Apptainer instances are
started once and reused across tasks; the idle reaper stops those unused for
``idle_s``). A slot whose runtime fails (an instance that died, a reset that failed) is
*broken*: stopped and replaced, never handed out again; its task's next acquire gets a
fresh slot and says so, so the caller rebuilds what the task had there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from matrixhpc.sandbox.backend import Backend
from matrixhpc.sandbox.limits import describe, recognise
from matrixhpc.sandbox.process import Finished, run_bounded
from matrixhpc.sandbox.slots import (
    BROKEN,
    BUSY,
    IDLE,
    STARTING,
    Slot,
    pool_root,
    run_root,
    wipe,
)
from matrixhpc.sandbox.spec import WORKDIR, SandboxSpec
from matrixhpc.sandbox.types import Command, ExecResult, Limits, SandboxError

log = logging.getLogger(__name__)

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": WORKDIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
}
READ_LIMIT = 16 * 2**20  # read_file: bytes at most


class Pool:
    def __init__(
        self,
        spec: SandboxSpec,
        backend: Backend,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.clock = clock
        self.root = pool_root(spec)
        self.slots: list[Slot] = []
        self.leases: dict[str, Slot] = {}
        self.changed = asyncio.Condition()
        self.env = {**BASE_ENV, **spec.env}
        self.next_index = 0
        self.counts: dict[str, int] = {"starts": 0, "execs": 0, "failed": 0, "evicted": 0}
        self.limit_hits: dict[str, int] = {"wall_s": 0, "memory": 0, "pids": 0, "output": 0}

    @property
    def prefix(self) -> str:
        """The names of this pool's instances: unique per run, worker and sandbox."""
        return f"mx-{self.spec.run_id}-{self.spec.owner}-{self.spec.name}-"

    # ------------------------------------------------------------- lifecycle

    async def open(self) -> None:
        """Stop what a killed incarnation of this worker left, start from empty dirs."""
        stopped = await self.backend.stop_orphans(self.prefix)
        if stopped:
            log.warning("sandbox %s: stopped %d orphaned instance(s)", self.spec.name, stopped)
        wipe(self.root)
        mode = 0o711 if self.spec.uid_base is not None else 0o700
        self.spec.scratch.mkdir(parents=True, exist_ok=True)
        if self.spec.uid_base is not None:
            _check_traversable(self.spec.scratch)
        for path in reversed([self.root, *self.root.parents][:4]):
            path.mkdir(exist_ok=True, mode=mode)
            os.chmod(path, mode)
        if self.spec.network == "host":
            log.warning(
                "sandbox %s: network: host — sandboxed code can reach the network", self.spec.name
            )

    async def close(self, *, run_finished: bool = False) -> None:
        """Stop every slot and remove their directories. At the end of the whole run
        also whatever any worker of the run left on this node (a worker killed for good
        and never restarted), instances and directories: nothing of the run can still
        be using a sandbox then."""
        for slot in list(self.slots):
            await self._drop(slot)
        self.leases.clear()
        if run_finished:
            with contextlib.suppress(SandboxError, OSError):
                await self.backend.stop_orphans(f"mx-{self.spec.run_id}-")
        with contextlib.suppress(OSError):
            wipe(run_root(self.spec) if run_finished else self.root)

    # --------------------------------------------------------------- leases

    async def acquire(self, key: str) -> tuple[SlotSandbox, bool]:
        """``key``'s slot (False) or a free one (True: fresh); waits up to
        ``acquire_timeout`` while every slot is leased; raises SandboxError."""
        slot = self.leases.get(key)
        if slot is not None:
            if slot.state != BROKEN:
                slot.parked_at = None
                return SlotSandbox(self, slot), False
            await self.release(key)  # broken: replaced; the task starts afresh
        slot = await self._claim(key)
        slot.last_used = self.clock()
        self.leases[key] = slot
        return SlotSandbox(self, slot), True

    def holds(self, key: str) -> bool:
        slot = self.leases.get(key)
        return slot is not None and slot.state != BROKEN

    def park(self, key: str) -> None:
        slot = self.leases.get(key)
        if slot is not None:
            slot.parked_at = self.clock()

    async def release(self, key: str) -> None:
        slot = self.leases.pop(key, None)
        if slot is not None:
            await self._recycle(slot)

    async def _claim(self, key: str) -> Slot:
        """A slot for ``key``, marked busy before anyone else can see it free: the
        warmest idle one, else a new one while the pool is not full, else a parked
        lease taken back (the oldest), else wait for a release. Only the choice is
        made under the lock; starting or resetting the slot is not (a reset notifies
        the waiters, which needs the lock), and the slot goes straight to ``key``.
        Waiters look again every second: a lease parked meanwhile does not notify."""
        deadline = self.clock() + self.spec.acquire_timeout
        while True:
            async with self.changed:
                idle = [s for s in self.slots if s.state == IDLE and s.key is None]
                if idle:
                    slot = max(idle, key=lambda s: s.last_used)  # the warmest
                    slot.key, slot.parked_at, slot.state = key, None, BUSY
                    return slot
                if len(self.slots) < self.spec.pool:
                    starting = self._new_slot(key)
                    evicted = None
                else:
                    starting = None
                    parked = [
                        s for s in self.slots if s.key is not None and s.parked_at is not None
                    ]
                    evicted = min(parked, key=lambda s: s.parked_at or 0.0) if parked else None
                    if evicted is not None:
                        self.counts["evicted"] += 1
                        self.leases.pop(evicted.key or "", None)
                        evicted.key, evicted.parked_at = key, None
                if starting is None and evicted is None:
                    left = deadline - self.clock()
                    if left <= 0:
                        raise SandboxError(
                            f"sandbox {self.spec.name}: all {self.spec.pool} slot(s) in use "
                            f"for {self.spec.acquire_timeout:g} s"
                        )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.changed.wait(), min(1.0, left))
                    continue
            if starting is not None:
                return await self._start_slot(starting)
            assert evicted is not None
            if await self._recycle(evicted, to=key):
                return evicted
            # the evicted slot could not be reset (dropped): there is room to start one

    def _new_slot(self, key: str) -> Slot:
        """A slot counted in the pool from now on (starting), reserved for ``key``."""
        index = self._free_index()
        uid = None if self.spec.uid_base is None else self.spec.uid_base + index
        slot = Slot(index, self.root / str(index), uid=uid, key=key)
        self.slots.append(slot)
        return slot

    async def _start_slot(self, slot: Slot) -> Slot:
        self.counts["starts"] += 1
        try:
            slot.dir.mkdir(mode=0o700, exist_ok=True)
            await asyncio.wait_for(self.backend.start(slot), self.spec.start_timeout)
        except (SandboxError, OSError, TimeoutError) as exc:
            self.counts["failed"] += 1
            await self._drop(slot)
            await self._notify()
            reason = str(exc) or f"not ready within {self.spec.start_timeout:g} s"
            raise SandboxError(f"sandbox {self.spec.name}: cannot start: {reason}") from exc
        except BaseException:  # cancelled: the slot must not stay counted as starting
            await asyncio.shield(self._drop(slot))
            raise
        slot.generation += 1
        slot.state = BUSY
        return slot

    def _free_index(self) -> int:
        used = {s.index for s in self.slots}
        return next(i for i in range(self.spec.pool + 1) if i not in used)

    async def _recycle(self, slot: Slot, to: str | None = None) -> bool:
        """Reset ``slot`` for the next task (``to``: already given to that key, so it
        is never seen free); a slot that cannot be reset is replaced (False)."""
        slot.key, slot.parked_at = to, None
        if slot.state != BROKEN:
            try:
                await self.backend.clean(slot)
                slot.make_dirs()
                slot.state = IDLE if to is None else BUSY
                slot.last_used = self.clock()
            except (SandboxError, OSError) as exc:
                log.warning(
                    "sandbox %s: slot %d cannot be reset (%s): replaced",
                    self.spec.name,
                    slot.index,
                    exc,
                )
                slot.state = BROKEN
        usable = slot.state != BROKEN
        if not usable:
            self.counts["failed"] += 1
            await self._drop(slot)
        await self._notify()
        return usable

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _drop(self, slot: Slot) -> None:
        with contextlib.suppress(ValueError):
            self.slots.remove(slot)
        try:
            await self.backend.stop(slot)
        except (SandboxError, OSError) as exc:
            log.warning(
                "sandbox %s: slot %d did not stop cleanly: %s", self.spec.name, slot.index, exc
            )
        with contextlib.suppress(OSError):
            wipe(slot.dir)

    async def reap(self) -> None:
        """Give back the slots of tasks that left more than ``keep_s`` ago and stop the
        live sandboxes idle for more than ``idle_s`` (called periodically by the owner)."""
        now = self.clock()
        for key, slot in list(self.leases.items()):
            if slot.parked_at is not None and now - slot.parked_at > self.spec.keep_s:
                await self.release(key)
        for slot in list(self.slots):
            if slot.state == IDLE and slot.key is None and now - slot.last_used > self.spec.idle_s:
                await self._drop(slot)

    # ---------------------------------------------------------------- execs

    async def run(
        self,
        slot: Slot,
        generation: int,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        limits: Limits,
        env: Mapping[str, str] | None,
    ) -> ExecResult:
        """One exec in ``slot``; its outcome, limit hits included (counted here)."""
        result = outcome(await self.run_raw(slot, generation, argv, stdin, limits, env), limits)
        if result.limit:
            self.limit_hits[result.limit] += 1
        if result.truncated:
            self.limit_hits["output"] += 1
        return result

    async def run_raw(
        self,
        slot: Slot,
        generation: int,
        argv: Sequence[str],
        stdin: bytes | None,
        limits: Limits,
        env: Mapping[str, str] | None,
    ) -> Finished:
        """One exec, its output as captured; raises SandboxError when the slot is gone or
        its runtime failed (the slot is then broken: replaced at its release)."""
        if slot.state == BROKEN or slot.generation != generation:
            raise SandboxError(f"sandbox {self.spec.name}: the slot was replaced")
        host, host_env = self.backend.exec_argv(slot, argv, {**self.env, **(env or {})})
        slot.execs += 1
        self.counts["execs"] += 1
        try:
            done = await run_bounded(
                host,
                stdin=stdin,
                wall_s=limits.wall_s,
                grace_s=limits.grace_s,
                output_bytes=limits.output_bytes,
                env={"PATH": os.environ.get("PATH", BASE_ENV["PATH"]), **host_env},
                cwd=str(slot.dir),
            )
        except OSError as exc:
            raise SandboxError(f"sandbox {self.spec.name}: cannot run: {exc}") from exc
        finally:
            slot.last_used = self.clock()
        broken = self.backend.failure(done.returncode, done.stderr.text())
        if broken is not None:
            slot.state = BROKEN
            raise SandboxError(f"sandbox {self.spec.name}: {broken}")
        return done

    def stats(self) -> dict[str, Any]:
        leased = self.leases.values()
        return {
            "backend": self.backend.kind,
            "enforcement": self.backend.enforcement,
            "size": self.spec.pool,
            "live": sum(1 for s in self.slots if s.state in (IDLE, BUSY)),
            "busy": sum(1 for s in leased if s.parked_at is None),
            "parked": sum(1 for s in leased if s.parked_at is not None),
            "starting": sum(1 for s in self.slots if s.state == STARTING),
            **self.counts,
            "limit_hits": dict(self.limit_hits),
        }


def _check_traversable(scratch: Path) -> None:
    """Slots with their own uids bind their directories from under ``scratch``: every
    directory above must let other users through (x), as /tmp does."""
    for path in [scratch.resolve(), *scratch.resolve().parents]:
        if not path.stat().st_mode & 0o001:
            raise SandboxError(
                f"scratch directory {scratch}: {path} is not traversable by other users, "
                "which the per-slot uids need (use a node-local directory such as /tmp)"
            )


def outcome(done: Finished, limits: Limits) -> ExecResult:
    """An exec's result: the exit code, the signal (a negative return code, or the
    shell's 128 + n that bwrap and Apptainer pass on), and the limit that stopped it."""
    code, sig = done.returncode, None
    if code is not None and code < 0:
        sig = _signame(-code)
    elif code is not None and 128 < code <= 128 + 64:
        sig = _signame(code - 128)
    stderr = done.stderr.text()
    limit = recognise(limits, sig, done.timed_out, stderr)
    return ExecResult(
        exit_code=code,
        signal=sig,
        timed_out=done.timed_out,
        stdout=done.stdout.text(),
        stderr=stderr,
        stdout_bytes=done.stdout.total,
        stderr_bytes=done.stderr.total,
        truncated=done.stdout.truncated or done.stderr.truncated,
        duration=round(done.duration, 4),
        limit=limit,
        error=describe(limit, limits),
    )


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class SlotSandbox:
    """A task's view of its slot (the :class:`~matrixhpc.sandbox.types.Sandbox` protocol).
    It stays bound to the slot's generation: once the slot is replaced, it refuses."""

    workdir = WORKDIR

    def __init__(self, pool: Pool, slot: Slot) -> None:
        self.pool = pool
        self.slot = slot
        self.generation = slot.generation
        self.name = pool.spec.name

    async def exec(
        self,
        command: Command,
        *,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        argv = ["sh", "-c", command] if isinstance(command, str) else list(command)
        limits = self.pool.spec.limits
        if timeout is not None and timeout < limits.wall_s:
            limits = replace(limits, wall_s=timeout)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return await self.pool.run(
            self.slot, self.generation, argv, stdin=data, limits=limits, env=env
        )

    async def write_file(self, path: str, data: bytes | str) -> ExecResult:
        # through the sandbox, not the host: the task's own permissions apply and a
        # symlink it planted cannot make the host write outside its directories
        script = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'
        return await self.exec(["sh", "-c", script, "sh", path], stdin=data)

    async def read_file(self, path: str) -> bytes:
        limits = replace(self.pool.spec.limits, output_bytes=READ_LIMIT)
        done = await self.pool.run_raw(
            self.slot, self.generation, ["cat", "--", path], None, limits, None
        )
        if done.returncode != 0:
            raise FileNotFoundError(f"{path}: {done.stderr.text().strip() or 'cannot be read'}")
        if done.stdout.truncated:
            raise SandboxError(f"{path} is larger than {READ_LIMIT} bytes")
        return done.stdout.bytes()
