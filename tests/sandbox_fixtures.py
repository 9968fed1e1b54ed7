"""Real sandboxes for the tests: bubblewrap and Apptainer as `make sandbox-tools` installs them.

A missing tool skips its tests with the reason (as the Slurm tests do when Slurm cannot
be installed); nothing here fakes a sandbox.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from matrixhpc.sandbox.bubblewrap import BubblewrapBackend
from matrixhpc.sandbox.pool import Pool
from matrixhpc.sandbox.spec import SandboxSpec
from matrixhpc.sandbox.types import Limits

NO_BWRAP = "bubblewrap not installed (make sandbox-tools installs it)"
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason=NO_BWRAP)

LIMITS = Limits(wall_s=5.0, grace_s=0.5, memory=256 * 2**20, pids=64, output_bytes=4096)
UID_BASE = 1_900_000_000 if os.geteuid() == 0 else None


@pytest.fixture
def scratch() -> Iterator[Path]:
    """Node-local scratch under /tmp: pytest's own tmp_path is not traversable by the
    per-slot uids the pool uses as root."""
    path = Path(tempfile.mkdtemp(prefix="mx-sandbox-test-", dir="/tmp"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def bwrap_spec(scratch: Path, **changes: object) -> SandboxSpec:
    fields: dict[str, object] = {
        "name": "tools",
        "backend": "bubblewrap",
        "pool": 2,
        "limits": LIMITS,
        "scratch": scratch,
        "uid_base": UID_BASE,
        "run_id": "test",
    }
    fields.update(changes)
    return SandboxSpec(**fields)  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def bwrap_pool(scratch: Path) -> AsyncIterator[Pool]:
    if shutil.which("bwrap") is None:
        pytest.skip(NO_BWRAP)
    spec = bwrap_spec(scratch)
    pool = Pool(spec, BubblewrapBackend(spec))
    await pool.open()
    yield pool
    await pool.close()


IMAGE = Path(__file__).resolve().parents[1] / "containers" / "tools.sif"


def apptainer_missing() -> str | None:
    """Why the Apptainer tests cannot run here, or None."""
    from matrixhpc.sandbox.apptainer import find_apptainer

    if find_apptainer() is None:
        return "apptainer not installed (make sandbox-tools installs it)"
    if not IMAGE.is_file():
        return f"no {IMAGE.name} (make sandbox-images builds it)"
    return None


def apptainer_spec(scratch: Path, **changes: object) -> SandboxSpec:
    fields: dict[str, object] = {"backend": "apptainer", "image": str(IMAGE), "uid_base": None}
    fields.update(changes)
    return bwrap_spec(scratch, **fields)


@pytest_asyncio.fixture
async def apptainer_pool(scratch: Path) -> AsyncIterator[Pool]:
    from matrixhpc.sandbox.apptainer import ApptainerBackend

    missing = apptainer_missing()
    if missing:
        pytest.skip(missing)
    spec = apptainer_spec(scratch)
    pool = Pool(spec, ApptainerBackend(spec))
    await pool.open()
    yield pool
    await pool.close()
