"""How the limits of a sandbox are enforced on this node, and how a hit is recognised.

Wall time is always the host's job (:mod:`.process`: TERM, then KILL after a grace).
Memory and processes are the kernel's, by one of three means, chosen per node:

- ``cgroups`` — the container runtime's own cgroup limits (Apptainer's ``--memory`` and
  ``--pids-limit`` on ``instance start``): exact, per instance, counted over every
  process in it. Apptainer can use them as root (cgroupfs, v1 or v2) or, unprivileged,
  on a cgroups v2 node with systemd delegation.
- ``rlimits, per-slot uid`` — where the worker is root and the backend is bubblewrap:
  each pool slot runs as a uid of its own (``uid_base + slot``), so ``RLIMIT_NPROC``,
  which the kernel counts per real uid, counts exactly that sandbox's processes, and
  ``RLIMIT_AS`` bounds each process's address space. (A per-slot uid also means the
  sandbox cannot read any host file that is not world-readable.)
- ``rlimits, shared uid`` — unprivileged without delegated cgroups: ``RLIMIT_AS`` per
  process as above, and ``RLIMIT_NPROC`` set to the user's processes at the exec plus
  ``pids``: a fork bomb is stopped, but the headroom is shared with the user's other
  processes on the node (say, concurrent sandboxes).

``RLIMIT_AS`` bounds address space, not resident memory: runtimes that reserve much
address space up front (Go, the JVM, some allocators) need more than they use.

A hit is recognised from what the kernel and the standard runtimes report: an OOM kill
is a SIGKILL nobody asked for, an allocation refused by ``RLIMIT_AS`` surfaces as
``MemoryError`` / ``Cannot allocate memory`` / ``bad_alloc``, a refused fork as
``Resource temporarily unavailable`` / ``can't fork`` / ``BlockingIOError``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from matrixhpc.sandbox.types import Limits

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}

MEMORY_SIGNS = ("MemoryError", "Cannot allocate memory", "bad_alloc", "out of memory")
PIDS_SIGNS = (
    "Resource temporarily unavailable",
    "can't fork",
    "Cannot fork",
    "BlockingIOError",
    "fork: retry",
)


def parse_size(value: int | str) -> int:
    """Bytes from ``1073741824``, ``"512M"``, ``"1G"``, ``"1GiB"`` (binary units)."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as '512M'")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("a size must be positive")
        return value
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a size (e.g. 1073741824, '512M', '1G')")
    size = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


def recognise(limits: Limits, signal: str | None, timed_out: bool, stderr: str) -> str | None:
    """Which limit stopped an exec, if any (see the module's docstring for how). A refused
    allocation or fork named in stderr comes first: a fork bomb's processes may keep
    retrying until the wall time, and the pids limit is what stopped the bomb."""
    if limits.memory is not None and any(sign in stderr for sign in MEMORY_SIGNS):
        return "memory"
    if limits.pids is not None and any(sign in stderr for sign in PIDS_SIGNS):
        return "pids"
    if timed_out:
        return "wall_s"
    if limits.memory is not None and signal == "SIGKILL":
        return "memory"  # a SIGKILL nobody sent: the OOM killer
    return None


def describe(limit: str | None, limits: Limits) -> str | None:
    """The words of a limit hit, for the turn's ``error``."""
    if limit == "wall_s":
        return f"wall time limit of {limits.wall_s:g} s exceeded: stopped (TERM, then KILL)"
    if limit == "memory":
        return f"memory limit of {limits.memory} bytes hit"
    if limit == "pids":
        return f"process limit of {limits.pids} hit"
    return None


def rlimit_prefix(limits: Limits, *, own_uid: bool) -> list[str]:
    """``prlimit`` (util-linux) in front of a command: the rlimits of the module's docstring."""
    argv = ["prlimit"]
    if limits.memory is not None:
        argv.append(f"--as={limits.memory}")
    if limits.pids is not None:
        base = 0 if own_uid else user_processes(os.getuid())
        argv.append(f"--nproc={base + limits.pids}")
    return [*argv, "--"] if len(argv) > 1 else []


def user_processes(uid: int, proc: Path = Path("/proc")) -> int:
    """Tasks (threads count: the kernel counts them for RLIMIT_NPROC) of ``uid`` now."""
    count = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                count += sum(1 for _ in (entry / "task").iterdir())
        except OSError:
            continue  # it exited meanwhile
    return count


def uid_per_slot() -> bool:
    """Whether slots can run as their own uids (the worker is root)."""
    return os.geteuid() == 0


def cgroups_for_apptainer() -> bool:
    """Whether Apptainer's ``--memory``/``--pids-limit`` will work here: as root always
    (cgroupfs), unprivileged only on a cgroups v2 node under a systemd user session
    (delegation) — ``XDG_RUNTIME_DIR`` and a v2 ``memory`` controller are the signs."""
    if os.geteuid() == 0:
        return True
    unified = Path("/sys/fs/cgroup/cgroup.controllers")
    try:
        controllers = unified.read_text().split()
    except OSError:
        return False
    return "memory" in controllers and "pids" in controllers and "XDG_RUNTIME_DIR" in os.environ
