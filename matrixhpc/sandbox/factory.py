"""Pools and their backends from specs: the one place that knows every backend."""

from __future__ import annotations

from collections.abc import Iterable

from matrixhpc.sandbox.backend import Backend
from matrixhpc.sandbox.bubblewrap import BubblewrapBackend
from matrixhpc.sandbox.pool import Pool
from matrixhpc.sandbox.service import Sandboxes
from matrixhpc.sandbox.spec import SandboxSpec
from matrixhpc.sandbox.types import SandboxError

UID_BASE = 1_500_000_000  # root: slots' uids start here (far above any site's real users)
UID_BLOCK = 1024  # uids per (worker, sandbox): the most slots a pool may have


def backend_for(spec: SandboxSpec, apptainer: str | None = None) -> Backend:
    if spec.backend == "bubblewrap":
        return BubblewrapBackend(spec)
    if spec.backend == "apptainer":
        from matrixhpc.sandbox.apptainer import ApptainerBackend

        return ApptainerBackend(spec, apptainer)
    raise SandboxError(f"unknown sandbox backend {spec.backend!r}")


def slot_uid_base(worker_index: int, ordinal: int, per_worker: int) -> int:
    """The first uid of a pool's block (root, bubblewrap): distinct for every worker and
    sandbox of a run, so that no two pools on a node share a process count."""
    return UID_BASE + (worker_index * per_worker + ordinal) * UID_BLOCK


def make_sandboxes(specs: Iterable[SandboxSpec], apptainer: str | None = None) -> Sandboxes:
    return Sandboxes({spec.name: Pool(spec, backend_for(spec, apptainer)) for spec in specs})
