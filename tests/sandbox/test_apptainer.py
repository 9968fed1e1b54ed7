"""The Apptainer backend and the pool: real instances of containers/tools.sif."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_fixtures import apptainer_missing, apptainer_spec

from matrixhpc.sandbox.apptainer import ApptainerBackend, find_apptainer
from matrixhpc.sandbox.pool import Pool
from matrixhpc.sandbox.types import Limits, SandboxError

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(apptainer_missing() is not None, reason=str(apptainer_missing())),
]

FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"
MEMORY_HOG = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))\n"


def instances(backend: ApptainerBackend) -> list[str]:
    """The run's live instances on this node, as `apptainer instance list` shows them."""
    listed = subprocess.run(
        [str(find_apptainer()), "instance", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(backend.home)},
        check=True,
    )
    return [i["instance"] for i in json.loads(listed.stdout)["instances"]]


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


async def test_isolation_no_network_read_only_root_private_tmp(
    apptainer_pool: Pool, listener: int
) -> None:
    box, _ = await apptainer_pool.acquire("t1")
    code = f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=2)"
    net = await box.exec(["python3", "-c", code])
    assert net.exit_code == 1
    assert "ConnectionRefusedError" in net.stderr or "unreachable" in net.stderr
    for path in ("/evil", "/usr/evil", "/etc/evil"):
        assert "Read-only file system" in (await box.exec(f"echo x > {path}")).stderr
    inside = await box.exec("echo a > /tmp/a && echo b > b && cat /tmp/a b && pwd")
    assert (inside.exit_code, inside.stdout) == (0, "a\nb\n/work\n")


async def test_other_tasks_files_are_invisible(apptainer_pool: Pool) -> None:
    one, _ = await apptainer_pool.acquire("t1")
    two, _ = await apptainer_pool.acquire("t2")
    await one.write_file("secret.txt", "t1's")
    await one.exec("echo t1 > /tmp/t1-tmp")
    seen = await two.exec("ls -A /work /tmp; cat secret.txt")
    assert seen.stdout == "/tmp:\n\n/work:\n"
    host = await two.exec(f"ls {apptainer_pool.root}")
    assert host.exit_code != 0


async def test_instances_are_started_once_and_reused_across_tasks(apptainer_pool: Pool) -> None:
    backend = apptainer_pool.backend
    assert isinstance(backend, ApptainerBackend)
    for i in range(4):
        box, fresh = await apptainer_pool.acquire(f"t{i}")
        assert fresh
        assert (await box.exec("ls -A /work; echo x > mine")).stdout == ""
        await box.exec("sleep 600 &")  # left running: the reset stops it
        await apptainer_pool.release(f"t{i}")
    assert apptainer_pool.counts["starts"] == 1
    assert len(instances(backend)) == 1
    box, _ = await apptainer_pool.acquire("last")
    assert "sleep 600" not in (await box.exec("ps -eo args")).stdout


async def test_limits_fork_bomb_memory_hog_sleep_and_output(apptainer_pool: Pool) -> None:
    box, _ = await apptainer_pool.acquire("t1")
    bomb = await box.exec(["python3", "-c", FORK_BOMB])
    assert bomb.limit == "pids", bomb
    hog = await box.exec(["python3", "-c", MEMORY_HOG])
    assert hog.limit == "memory", hog
    sleepy = await box.exec("sleep 1000", timeout=1.0)
    assert (sleepy.timed_out, sleepy.limit) == (True, "wall_s")
    assert sleepy.duration < 4
    loud = await box.exec("seq 1 100000")
    assert loud.truncated
    assert loud.stdout.endswith("100000\n")
    assert (await box.exec("echo alive")).stdout == "alive\n"  # the instance goes on
    hits = apptainer_pool.stats()["limit_hits"]
    assert (hits["pids"], hits["memory"], hits["wall_s"]) == (1, 1, 1)
    assert hits["output"] >= 1  # seq, and maybe the bomb's tracebacks


async def test_a_broken_instance_is_replaced_not_reused(apptainer_pool: Pool) -> None:
    backend = apptainer_pool.backend
    assert isinstance(backend, ApptainerBackend)
    box, _ = await apptainer_pool.acquire("t1")
    await box.write_file("state", "x")
    await backend.stop(box.slot)  # the instance dies behind the pool's back
    with pytest.raises(SandboxError):
        await box.exec("true")
    again, fresh = await apptainer_pool.acquire("t1")
    assert fresh  # the task starts afresh (its caller replays what it had)
    assert again.slot is not box.slot
    assert (await again.exec("echo ok")).stdout == "ok\n"
    assert apptainer_pool.counts["starts"] == 2
    assert apptainer_pool.counts["failed"] == 1


async def test_a_killed_incarnations_instances_are_stopped_at_start(scratch: Path) -> None:
    spec = apptainer_spec(scratch)
    killed = Pool(spec, ApptainerBackend(spec))
    await killed.open()
    await killed.acquire("t1")
    await killed.acquire("t2")
    backend = ApptainerBackend(spec)
    assert len(instances(backend)) == 2  # never closed: as after kill -9
    restarted = Pool(spec, backend)
    await restarted.open()
    try:
        assert instances(backend) == []
    finally:
        await restarted.close()


async def test_the_idle_reaper_stops_unused_instances_and_parked_leases(scratch: Path) -> None:
    now = [0.0]
    spec = apptainer_spec(scratch, idle_s=100.0, keep_s=50.0)
    pool = Pool(spec, ApptainerBackend(spec), clock=lambda: now[0])
    await pool.open()
    try:
        await pool.acquire("t1")
        pool.park("t1")
        now[0] = 60.0
        await pool.reap()  # parked past keep_s: given back, still live
        assert not pool.holds("t1")
        assert pool.stats()["live"] == 1
        now[0] = 200.0
        await pool.reap()  # idle past idle_s: stopped
        assert pool.stats()["live"] == 0
        assert instances(pool.backend) == []  # type: ignore[arg-type]
    finally:
        await pool.close()


async def test_64_concurrent_execs_across_the_pool(scratch: Path) -> None:
    spec = apptainer_spec(scratch, pool=4, limits=Limits(wall_s=120, pids=1024))
    pool = Pool(spec, ApptainerBackend(spec))
    await pool.open()
    try:
        boxes = [(await pool.acquire(f"t{i}"))[0] for i in range(4)]
        results = await asyncio.gather(*(boxes[i % 4].exec(f"echo {i}") for i in range(64)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(64)]
    finally:
        await pool.close()
