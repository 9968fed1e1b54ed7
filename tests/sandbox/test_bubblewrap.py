"""The bubblewrap backend through its pool: real bwrap, real limits, real isolation."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sandbox_fixtures import bwrap_spec, needs_bwrap

from matrixhpc.sandbox.bubblewrap import BubblewrapBackend
from matrixhpc.sandbox.pool import Pool
from matrixhpc.sandbox.types import Limits

pytestmark = [pytest.mark.asyncio, needs_bwrap]

FORK_BOMB = "import os\nwhile True:\n    os.fork()\n"
MEMORY_HOG = "blocks = []\nwhile True:\n    blocks.append(bytearray(64 * 2**20))\n"


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP server on the host's loopback (the host can connect to it)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    socket.create_connection(server.getsockname(), timeout=2).close()
    yield server.getsockname()[1]
    server.close()


async def test_no_network_the_hosts_loopback_is_refused(bwrap_pool: Pool, listener: int) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    code = f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=2)"
    result = await box.exec(["python3", "-c", code])
    assert result.exit_code == 1
    assert "ConnectionRefusedError" in result.stderr


async def test_network_host_shares_the_network(scratch: Path, listener: int) -> None:
    spec = bwrap_spec(scratch, network="host")
    pool = Pool(spec, BubblewrapBackend(spec))
    await pool.open()
    try:
        box, _ = await pool.acquire("t1")
        code = f"import socket; socket.create_connection(('127.0.0.1', {listener}), timeout=2)"
        assert (await box.exec(["python3", "-c", code])).exit_code == 0
    finally:
        await pool.close()


async def test_read_only_root_writable_work_and_tmp(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    for path in ("/evil", "/usr/evil", "/etc/evil"):
        outside = await box.exec(f"echo x > {path}")
        assert outside.exit_code != 0, path
        assert "Read-only file system" in outside.stderr
    inside = await box.exec("echo a > /tmp/a && echo b > b && cat /tmp/a b && pwd")
    assert (inside.exit_code, inside.stdout) == (0, "a\nb\n/work\n")


async def test_other_tasks_files_and_the_host_are_invisible(bwrap_pool: Pool) -> None:
    one, _ = await bwrap_pool.acquire("t1")
    two, _ = await bwrap_pool.acquire("t2")
    await one.write_file("secret.txt", "t1's")
    await one.exec("echo t1 > /tmp/t1-tmp")
    seen = await two.exec("ls -A /work /tmp; cat secret.txt")
    assert seen.stdout == "/tmp:\n\n/work:\n"
    assert seen.exit_code != 0
    # the host's directories of the slots (and of the run, /home, ...) are not mounted
    host_dir = str(bwrap_pool.root)
    probe = await two.exec(f"ls {host_dir} || ls /home/* || ls /work/../tmp/..")
    assert host_dir not in probe.stdout
    assert "t1" not in probe.stdout


async def test_a_task_keeps_its_files_until_released_then_the_slot_is_reset(
    bwrap_pool: Pool,
) -> None:
    box, fresh = await bwrap_pool.acquire("t1")
    assert fresh
    await box.write_file("dir/state.txt", "kept")
    again, fresh = await bwrap_pool.acquire("t1")
    assert not fresh
    assert await again.read_file("dir/state.txt") == b"kept"
    await bwrap_pool.release("t1")
    reused, fresh = await bwrap_pool.acquire("t3")
    assert fresh
    assert reused.slot is box.slot  # the same slot, reused
    assert (await reused.exec("ls -A /work /tmp")).stdout == "/tmp:\n\n/work:\n"
    with pytest.raises(FileNotFoundError):
        await reused.read_file("dir/state.txt")


async def test_files_are_binary_safe(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    data = bytes(range(256)) * 100
    assert (await box.write_file("blob.bin", data)).exit_code == 0
    assert await box.read_file("blob.bin") == data


async def test_a_fork_bomb_is_stopped_by_the_pids_limit(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    result = await box.exec(["python3", "-c", FORK_BOMB])
    assert result.limit == "pids", result
    assert result.error == "process limit of 64 hit"
    assert bwrap_pool.limit_hits["pids"] == 1
    assert (await box.exec("echo alive")).stdout == "alive\n"  # the sandbox goes on


async def test_a_memory_hog_is_stopped_by_the_memory_limit(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    result = await box.exec(["python3", "-c", MEMORY_HOG])
    assert (result.exit_code, result.limit) == (1, "memory")
    assert "MemoryError" in result.stderr


async def test_sleep_1000_is_stopped_by_the_wall_time(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    result = await box.exec("sleep 1000", timeout=1.0)
    assert result.timed_out
    assert (result.limit, result.signal) == ("wall_s", "SIGTERM")
    assert result.duration < 4
    assert result.error is not None
    assert "wall time limit of 1 s" in result.error


async def test_output_over_the_limit_is_truncated_with_the_counts(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    result = await box.exec("seq 1 100000; seq 1 10 >&2")
    assert result.truncated
    assert result.stdout_bytes == len("".join(f"{i}\n" for i in range(1, 100001)))
    assert result.stdout.startswith("1\n2\n3\n")
    assert result.stdout.endswith("99999\n100000\n")
    assert f"bytes omitted of {result.stdout_bytes}" in result.stdout
    assert result.stderr_bytes == 21
    assert bwrap_pool.limit_hits["output"] == 1


async def test_a_signal_is_reported_by_name(bwrap_pool: Pool) -> None:
    box, _ = await bwrap_pool.acquire("t1")
    result = await box.exec("kill -SEGV $$")
    assert (result.exit_code, result.signal) == (139, "SIGSEGV")


async def test_300_concurrent_execs_across_the_pool_complete(scratch: Path) -> None:
    spec = bwrap_spec(scratch, pool=6, limits=Limits(wall_s=120, pids=1024))
    pool = Pool(spec, BubblewrapBackend(spec))
    await pool.open()
    try:
        boxes = [(await pool.acquire(f"t{i}"))[0] for i in range(6)]
        results = await asyncio.gather(*(boxes[i % 6].exec(f"echo {i}") for i in range(300)))
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(300)]
        assert pool.counts["execs"] == 300
    finally:
        await pool.close()
