"""Which :class:`~matrixhpc.launch.launcher.Launcher` runs a run: by name, as submitit's
``AutoExecutor`` picks a cluster.

A new run gets the launcher the user asked for (``--local`` / ``--slurm``), else Slurm
where ``sbatch`` is on PATH. A run that exists keeps the one that started it, read
from ``run.json``'s ``launcher``: ``stop``, ``status`` and ``resume`` must talk to the
same scheduler (or processes) as ``run`` did.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping

from matrixhpc.launch.launcher import Launcher
from matrixhpc.launch.local import LocalBackend
from matrixhpc.launch.slurm_run import SlurmBackend

BACKENDS: dict[str, Callable[[], Launcher]] = {"local": LocalBackend, "slurm": SlurmBackend}


class UnknownLauncher(ValueError):
    """A launcher name that no backend answers to (a hand-edited or foreign run.json)."""


def default_kind() -> str:
    """Slurm when ``sbatch`` is on PATH (a cluster's login node), else this machine."""
    return "slurm" if shutil.which("sbatch") else "local"


def launcher_for(kind: str) -> Launcher:
    """The backend called ``kind`` ("local" or "slurm")."""
    try:
        return BACKENDS[kind]()
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UnknownLauncher(f"launcher {kind!r} is not one of {known}") from None


def launcher_of(run: Mapping[str, object]) -> Launcher:
    """The backend that started the run whose ``run.json`` is ``run``.

    A run.json without ``launcher`` (none is written so) is taken for a local run,
    as the commands always have."""
    kind = run.get("launcher") or "local"
    try:
        return launcher_for(str(kind))
    except UnknownLauncher as exc:
        raise UnknownLauncher(f"run.json: {exc}") from None
