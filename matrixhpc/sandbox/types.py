"""The sandbox interface: what agents and the runtime see of a tool sandbox.

Everything else in this package (the backends, the pool, the limits) sits behind these
types, so an agent that runs an LLM's tool call, the runtime that parks a task's
sandbox when the task leaves, and a test all speak the same small API:

- a :class:`SandboxProvider` hands out the sandbox of a task (``acquire``), keeps it for
  the task while the task is away (``park``), and takes it back (``release``), which
  resets it before another task gets it;
- a :class:`Sandbox` runs commands (``exec``) and moves files in and out
  (``write_file`` / ``read_file``); each exec is bounded by :class:`Limits` and its
  outcome, limit hits included, is an :class:`ExecResult`, never an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

Command = str | Sequence[str]  # a shell command line (run by sh -c) or an argv


class SandboxError(Exception):
    """The sandbox itself failed (it cannot start, it broke): not the command's outcome."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of one exec. ``memory`` in bytes; None: not limited."""

    wall_s: float = 30.0
    grace_s: float = 2.0  # between TERM and KILL when the wall time is up
    memory: int | None = 1 << 30
    pids: int | None = 256
    output_bytes: int = 65536  # per stream; beyond it the head and the tail are kept


@dataclass(slots=True)
class ExecResult:
    """What one exec did. ``limit`` names the limit that stopped it (``wall_s``, ``memory``,
    ``pids``) and ``error`` says so in words; ``truncated`` means stdout or stderr was
    longer than ``output_bytes`` (their full sizes are ``stdout_bytes``/``stderr_bytes``)."""

    exit_code: int | None
    signal: str | None
    timed_out: bool
    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    truncated: bool
    duration: float
    limit: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sandbox(Protocol):
    """One task's sandbox: a private working directory (``workdir``, the commands' cwd)
    and /tmp, a read-only root, no network unless configured."""

    name: str  # the sandbox's name in the config
    workdir: str

    async def exec(
        self,
        command: Command,
        *,
        stdin: bytes | str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecResult:
        """Run ``command`` (``timeout`` lowers the wall limit for this exec)."""
        ...

    async def write_file(self, path: str, data: bytes | str) -> ExecResult:
        """Write ``data`` to ``path`` (relative to ``workdir``), creating parent dirs."""
        ...

    async def read_file(self, path: str) -> bytes:
        """The content of ``path``; raises FileNotFoundError if the sandbox has none."""
        ...


class SandboxProvider(Protocol):
    """The sandboxes of the tasks on this worker, by sandbox name and task id."""

    def names(self) -> Sequence[str]:
        """The configured sandboxes."""
        ...

    async def acquire(self, name: str, key: str) -> tuple[Sandbox, bool]:
        """The sandbox ``name`` of task ``key``, and whether it is fresh (True: nothing of
        the task is in it yet, e.g. the task came from another worker or a restart)."""
        ...

    def holds(self, key: str) -> bool:
        """Whether this worker has a live sandbox of task ``key`` (acquired or parked)."""
        ...

    def park(self, key: str) -> None:
        """The task left this worker: keep its sandboxes a while, in case it comes back."""
        ...

    async def release(self, key: str) -> None:
        """The task is finished: reset its sandboxes and give them to other tasks."""
        ...

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per sandbox: size, busy, starting, failed, execs, limit hits (for `status`)."""
        ...

    async def maintain(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Run for the worker's life: the pools' idle reaper, on the worker's clock."""
        ...
