"""What a sandbox backend does for the pool: start a slot, the argv of one exec, stop.

The pool (:mod:`.pool`) owns the slots' lifecycle (leases, reuse, reaping, replacing a
broken one) and :mod:`.process` the waiting and the limits of time and output; a
backend only knows how its runtime enters a sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from matrixhpc.sandbox.slots import Slot


class Backend(Protocol):
    kind: str
    enforcement: str  # how memory and pids are limited here (see limits)

    async def start(self, slot: Slot) -> None:
        """Make ``slot`` ready for execs (its directories exist and are empty); raises
        SandboxError when it cannot (start timeout, a failed readiness probe)."""
        ...

    def exec_argv(
        self, slot: Slot, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        """The host command that runs ``argv`` in ``slot`` with ``env`` inside, and the
        host environment it needs."""
        ...

    def failure(self, returncode: int | None, stderr: str) -> str | None:
        """Why an exec failed in the runtime itself, not in the command (then the slot is
        treated as broken); None when the outcome is the command's."""
        ...

    async def clean(self, slot: Slot) -> None:
        """Before the slot goes to another task: stop what the last one left running."""
        ...

    async def stop(self, slot: Slot) -> None:
        """Stop the slot for good (the pool wipes its directories)."""
        ...

    async def stop_orphans(self, prefix: str) -> int:
        """Stop every live sandbox whose name starts with ``prefix`` (a killed
        incarnation's); the number stopped."""
        ...
