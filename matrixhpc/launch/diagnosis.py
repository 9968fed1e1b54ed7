"""Why a worker stopped, in one line the launcher can print.

A worker that stops on a fault writes the reason to its status file (``fault``; a failing
journal also under ``journal.error``). When the run directory's filesystem is full even
that may not reach the disk, so the launcher also says how much room is left there:
the likely cause, named, instead of a bare exit code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from matrixhpc.files import read_json

LOW_SPACE = 16 * 2**20  # bytes: below this, the free space is worth a mention


def exit_reason(run_dir: Path, worker: str) -> str:
    """The worker's recorded fault and a low-space warning, or "" when neither applies."""
    parts: list[str] = []
    status = read_json(run_dir / "status" / f"{worker}.json")
    if isinstance(status, dict) and status.get("fault"):
        parts.append(f"reason: {status['fault']}")
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        free = None
    if free is not None and free < LOW_SPACE:
        parts.append(f"only {free} bytes free on the filesystem of {run_dir}")
    return "; ".join(parts)
