"""Process lifecycle: how a matrixhpc process (a worker, an LLM replica) stops on a signal.

SIGTERM/SIGINT (Ctrl-C, ``scancel``) and SIGUSR2 (Slurm's warning before a time
limit or preemption, as submitit configures it) all mean: stop now, resumably.
Stop signals often come in pairs — Slurm sends USR2 and then TERM, an impatient
user presses Ctrl-C twice — and the shutdown they start (commit the journal,
close the output, leave the registry) is exactly what must not be interrupted:
so the first signal starts the shutdown and later ones are only logged. Whoever
really wants the process gone sooner has SIGKILL (Slurm sends it after its grace
period), and a journaled run survives that too.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)

log = logging.getLogger(__name__)


class _Stopper:
    """Cancels ``task`` on the first stop signal; logs every later one."""

    def __init__(self, task: asyncio.Future[Any]) -> None:
        self.task = task
        self.stopping: str | None = None

    def __call__(self, signum: signal.Signals) -> None:
        if self.stopping is not None:
            log.warning(
                "%s received: already stopping (since %s); letting the shutdown finish",
                signum.name,
                self.stopping,
            )
            return
        self.stopping = signum.name
        log.warning("%s received: stopping (state is saved; resume continues)", signum.name)
        self.task.cancel()


async def run_until_signal(main: Awaitable[T]) -> T | None:
    """Run ``main`` until it ends or a stop signal arrives; then let it shut down cleanly.

    The first stop signal cancels ``main`` once, so its ``finally`` blocks run; any
    further signal is logged and ignored, so the shutdown runs to its end. The
    handlers stay installed until the event loop closes (``asyncio.run``'s own
    teardown is covered too). Returns main's result, or None if it was stopped.
    """
    task = asyncio.ensure_future(main)
    stopper = _Stopper(task)
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stopper, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if stopper.stopping is None:
            raise  # cancelled by someone else, not by a signal: not ours to swallow
        return None
