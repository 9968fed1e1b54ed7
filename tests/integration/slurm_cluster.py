"""A real single-node Slurm cluster for tests, started by ``slurm/local-cluster.sh``.

Use it from a test module (or a conftest.py, to share one cluster between modules)::

    from slurm_cluster import sacct_states, slurm_cluster_fixture  # noqa: F401

    @pytest.mark.slurm
    def test_x(slurm_cluster: Path) -> None:  # the path of slurm.conf; SLURM_CONF is set
        job_id = sbatch("--wrap", "hostname")
        assert wait_for_states([job_id])[job_id] == "COMPLETED"

The session fixture installs the packages (``slurm/install-packages.sh``; the tests are skipped
with the reason when that is impossible here: no apt-get, not root, apt failure), starts the
cluster in a fresh directory under /tmp on free ports, sets ``os.environ["SLURM_CONF"]`` and on
teardown stops it and asserts that no process it started is left. Environment:

- ``MATRIXHPC_SLURM_REQUIRED=1``: fail instead of skip when Slurm cannot be installed.
- ``MATRIXHPC_SLURM_KEEP=1``: keep the state directory (configs, logs) after the session;
  it is always kept when teardown finds leftovers.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "slurm" / "install-packages.sh"
CLUSTER = REPO / "slurm" / "local-cluster.sh"

# sacct states after which a job never changes again (REQUEUED is not one of them)
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
# what the state directory's processes are called (slurmscriptd is slurmctld's helper)
DAEMON_NAMES = frozenset(
    {
        "slurmctld",
        "slurmscriptd",
        "slurmd",
        "slurmdbd",
        "slurmstepd",
        "mariadbd",
        "mysqld",
        "munged",
    }
)
# pid files written under the state directory, by daemon
PID_FILES = {
    "munged": "munge/munged.pid",
    "mariadbd": "mysql/mariadbd.pid",
    "slurmdbd": "run/slurmdbd.pid",
    "slurmctld": "run/slurmctld.pid",
    "slurmd": "run/slurmd.pid",
}


# ---------------------------------------------------------------------------------------------
# helpers for tests


def sacct_states(job_ids: Iterable[str | int]) -> dict[str, str]:
    """Accounting state of each job (allocations only), by job id as sacct prints it.

    An array job id ``"12"`` yields ``"12_0"``, ``"12_1"``... States are the first word
    (``"CANCELLED by 0"`` -> ``"CANCELLED"``); a requeued job shows its latest run.
    Jobs sacct does not know (yet) are missing from the result.
    """
    ids = [str(i) for i in job_ids]
    if not ids:
        return {}
    out = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(ids)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    states: dict[str, str] = {}
    for line in out.stdout.splitlines():
        job, _, state = line.partition("|")
        if job.strip():
            states[job.strip()] = state.split()[0] if state.strip() else ""
    return states


def wait_for_states(
    job_ids: Iterable[str | int],
    want: Iterable[str] = TERMINAL_STATES,
    timeout: float = 30.0,
    interval: float = 0.2,
) -> dict[str, str]:
    """Poll sacct until every job is in one of ``want`` (default: any terminal state).

    For a job array pass the task ids (``"12_0"``, ``"12_1"``...): right after the tasks run,
    sacct may for a moment show the array as one record under the bare id, already COMPLETED.
    sacct lags squeue by up to a second or so. Returns the states reached; raises
    ``TimeoutError`` (with the last states) otherwise.
    """
    ids = [str(i) for i in job_ids]
    wanted = frozenset(want)
    deadline = time.monotonic() + timeout
    states: dict[str, str] = {}
    while True:
        states = sacct_states(ids)
        covered = all(any(j == i or j.startswith(f"{i}_") for j in states) for i in ids)
        if covered and states and all(s in wanted for s in states.values()):
            return states
        if time.monotonic() > deadline:
            raise TimeoutError(f"jobs {ids} not in {sorted(wanted)} after {timeout}s: {states}")
        time.sleep(interval)


def sbatch(*args: str, cwd: Path | None = None) -> str:
    """``sbatch --parsable ARGS``; returns the job id."""
    out = subprocess.run(
        ["sbatch", "--parsable", *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        cwd=cwd,
    )
    return out.stdout.strip().split(";")[0]


# ---------------------------------------------------------------------------------------------
# process checks


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _under(path: str, state_dir: str) -> bool:
    return path == state_dir or path.startswith(state_dir + "/")


def _uses_state(pid: int, state_dir: str) -> bool:
    proc = Path(f"/proc/{pid}")
    with contextlib.suppress(OSError):
        if _under(os.readlink(proc / "cwd"), state_dir):
            return True
    with contextlib.suppress(OSError):
        for fd in (proc / "fd").iterdir():
            with contextlib.suppress(OSError):
                if _under(os.readlink(fd), state_dir):
                    return True
    with contextlib.suppress(OSError):
        if (state_dir + "/").encode() in (proc / "cmdline").read_bytes():
            return True
    with contextlib.suppress(OSError):
        marker = f"MATRIXHPC_SLURM_STATE={state_dir}".encode()
        if marker in (proc / "environ").read_bytes().split(b"\0"):
            return True
    return False


def leftover_processes(state_dir: Path) -> list[str]:
    """Processes started from ``state_dir`` that are still alive, as ``"name pid"``.

    Looks at the pid files and at every slurm/munge/mariadb process whose cwd, open files,
    command line or environment point into the state directory; nothing else.
    """
    root = str(state_dir)
    found: dict[int, str] = {}
    for name, rel in PID_FILES.items():
        with contextlib.suppress(OSError, ValueError):
            pid = int((state_dir / rel).read_text().strip())
            if _alive(pid):
                with contextlib.suppress(OSError):
                    comm = Path(f"/proc/{pid}/comm").read_text().strip()
                    if comm == name or (name == "mariadbd" and comm == "mysqld"):
                        found[pid] = comm
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        pid = int(proc.name)
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if comm in DAEMON_NAMES and _alive(pid) and _uses_state(pid, root):
            found[pid] = comm
    return [f"{comm} {pid}" for pid, comm in sorted(found.items())]


# ---------------------------------------------------------------------------------------------
# the fixture


def _free_port_base(count: int = 4) -> int:
    """A base port with ``count`` consecutive free ports, below the ephemeral range."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports for the Slurm daemons")


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("MATRIXHPC_SLURM_REQUIRED") == "1":
        pytest.fail(f"Slurm required (MATRIXHPC_SLURM_REQUIRED=1) but: {reason}")
    pytest.skip(reason)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _install() -> None:
    if not sys.platform.startswith("linux"):
        _skip_or_fail("the local Slurm cluster needs Linux")
    if shutil.which("bash") is None:
        _skip_or_fail("the local Slurm cluster needs bash")
    try:
        res = subprocess.run(
            ["bash", str(INSTALL)], capture_output=True, text=True, timeout=1200, check=False
        )
    except subprocess.TimeoutExpired:
        _skip_or_fail("slurm/install-packages.sh timed out")
        return
    if res.returncode != 0:
        _skip_or_fail(
            f"Slurm packages cannot be installed here (slurm/install-packages.sh exit "
            f"{res.returncode}): {_tail(res.stderr or res.stdout, 5)}"
        )
    if os.geteuid() != 0:
        _skip_or_fail("the local Slurm cluster must be started as root")


def _down(state_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(CLUSTER), "down", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


class _Cluster:
    """The session's one cluster, however many modules import the fixture (each import makes
    its own fixture definition; they share this, and the last teardown stops it)."""

    state_dir: Path | None = None
    conf: Path | None = None
    users = 0
    previous_conf: str | None = None


def _start() -> Path:
    _install()
    # not pytest's tmp_path: its parents are mode 700 (munge and mysql could not enter) and
    # long (unix socket paths are limited to 107 bytes)
    state_dir = Path(tempfile.mkdtemp(prefix="mhpc-slurm-", dir="/tmp"))
    state_dir.chmod(0o755)
    env = {**os.environ, "MATRIXHPC_SLURM_PORT_BASE": str(_free_port_base())}
    env.pop("SLURM_CONF", None)
    t0 = time.monotonic()
    try:
        res = subprocess.run(
            ["bash", str(CLUSTER), "up", str(state_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        _down(state_dir)
        pytest.fail(f"local-cluster.sh up timed out: {exc}")
    last = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else ""
    if res.returncode != 0 or not last.startswith("export SLURM_CONF="):
        _down(state_dir)
        pytest.fail(
            f"local-cluster.sh up {state_dir} failed (exit {res.returncode}):\n"
            f"{_tail(res.stderr, 60)}"
        )
    conf = Path(last.partition("=")[2].strip())
    print(f"\n[slurm_cluster] up in {time.monotonic() - t0:.1f}s: {conf}", file=sys.stderr)
    _Cluster.state_dir, _Cluster.conf = state_dir, conf
    _Cluster.previous_conf = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    return conf


def _stop() -> None:
    state_dir = _Cluster.state_dir
    assert state_dir is not None
    _Cluster.state_dir = _Cluster.conf = None
    if _Cluster.previous_conf is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = _Cluster.previous_conf
    res = _down(state_dir)
    left: list[str] = []
    deadline = time.monotonic() + 5
    while True:
        left = leftover_processes(state_dir)
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not left and res.returncode == 0 and os.environ.get("MATRIXHPC_SLURM_KEEP") != "1":
        shutil.rmtree(state_dir, ignore_errors=True)
    assert res.returncode == 0, f"local-cluster.sh down failed:\n{_tail(res.stderr)}"
    assert not left, f"processes left after local-cluster.sh down ({state_dir}): {left}"


@pytest.fixture(scope="session", name="slurm_cluster")
def slurm_cluster_fixture() -> Iterator[Path]:
    """Start a fresh local Slurm cluster (once per session); yield the path of its slurm.conf.

    ``os.environ["SLURM_CONF"]`` points at it while it runs (so ``sbatch``, ``sacct``,
    submitit... use it); restored on teardown, which stops the cluster and asserts that no
    process started from its state directory is left.
    """
    conf = _Cluster.conf if _Cluster.conf is not None else _start()
    _Cluster.users += 1
    try:
        yield conf
    finally:
        _Cluster.users -= 1
        if _Cluster.users == 0:
            _stop()
