"""What a Slurm job runs: a ``matrixhpc`` command as a child process, requeued on warning.

submitit pickles these callables and runs them on the compute node. On SIGUSR2
(Slurm's warning before a time limit or preemption, ``--signal=USR2@N``) submitit
calls :meth:`checkpoint`: the child is told to stop (it commits its journal and
exits resumably), and the same callable with the same arguments is requeued. An
array task keeps its index, so a requeued worker comes back with its identity
and replays its journal; a requeued server re-registers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import submitit

STOP_WAIT = 60.0  # seconds the child gets to commit and exit


class CommandJob(submitit.helpers.Checkpointable):
    def __init__(self, argv: list[str], python: str | None = None) -> None:
        self.argv = argv
        self.python = python
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def command(self, *_args: Any) -> list[str]:
        return [self.python or sys.executable, "-m", "matrixhpc", *self.argv]

    def __call__(self, *args: Any) -> int:
        self._proc = subprocess.Popen(self.command(*args))
        code = self._proc.wait()
        while self._stopping:  # being requeued: let Slurm end this job, do not report
            time.sleep(1)
        if code != 0:
            raise RuntimeError(f"{' '.join(self.command(*args))} exited with code {code}")
        return code

    def checkpoint(self, *args: Any) -> submitit.helpers.DelayedSubmission:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
        return submitit.helpers.DelayedSubmission(type(self)(self.argv, self.python), *args)

    def __getstate__(self) -> dict[str, Any]:
        return {"argv": self.argv, "python": self.python}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _proc=None, _stopping=False)


class WorkerJob(CommandJob):
    """One element of the worker array: the index is the worker's identity."""

    def command(self, *args: Any) -> list[str]:
        index = args[0] if args else int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))
        return [*super().command(), "--index", str(index)]
