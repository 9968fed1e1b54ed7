"""The pool's leases when slots run short: parked leases taken back, waiters, timeouts.

Real bubblewrap slots (cheap to start); every wait is bounded so a deadlock fails the
test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sandbox_fixtures import bwrap_spec, needs_bwrap

from matrixhpc.sandbox.bubblewrap import BubblewrapBackend
from matrixhpc.sandbox.pool import Pool
from matrixhpc.sandbox.slots import run_root
from matrixhpc.sandbox.types import SandboxError

pytestmark = [pytest.mark.asyncio, needs_bwrap]
BOUND = 30.0  # seconds: far above what any of these acquires needs


async def opened(scratch: Path, **changes: object) -> Pool:
    spec = bwrap_spec(scratch, **changes)
    pool = Pool(spec, BubblewrapBackend(spec))
    await pool.open()
    return pool


async def test_a_parked_lease_is_taken_back_when_every_slot_is_in_use(scratch: Path) -> None:
    pool = await opened(scratch, pool=1)
    try:
        box, _ = await pool.acquire("t0")
        await box.write_file("mine.txt", "t0's")
        pool.park("t0")
        taken, fresh = await asyncio.wait_for(pool.acquire("t1"), BOUND)
        assert fresh
        assert taken.slot is box.slot
        assert not pool.holds("t0")
        assert pool.holds("t1")
        assert pool.counts["evicted"] == 1
        assert pool.counts["starts"] == 1
        assert (await taken.exec("ls -A /work")).stdout == ""  # reset before it was given
        with pytest.raises(TimeoutError):  # t1 is here: its slot is not taken back
            await asyncio.wait_for(pool.acquire("t0"), 0.5)
        assert len(pool.slots) == 1
        assert sorted(pool.leases) == ["t1"]
    finally:
        await pool.close()


async def test_acquirers_racing_for_parked_slots_each_get_their_own(scratch: Path) -> None:
    pool = await opened(scratch, pool=2)
    try:
        for key in ("t0", "t1"):
            await pool.acquire(key)
            pool.park(key)
        got = await asyncio.wait_for(asyncio.gather(pool.acquire("t2"), pool.acquire("t3")), BOUND)
        assert {id(box.slot) for box, _ in got} == {id(s) for s in pool.slots}
        assert len(pool.slots) == 2
        assert pool.counts["evicted"] == 2
        assert sorted(pool.leases) == ["t2", "t3"]
    finally:
        await pool.close()


async def test_a_waiter_sees_a_lease_parked_after_it_began_waiting(scratch: Path) -> None:
    pool = await opened(scratch, pool=1)
    try:
        await pool.acquire("t0")
        waiter = asyncio.ensure_future(pool.acquire("t1"))
        await asyncio.sleep(0)  # the waiter is waiting now: every slot is busy
        assert not waiter.done()
        pool.park("t0")  # no notification: the waiter's periodic look finds it
        _, fresh = await asyncio.wait_for(waiter, BOUND)
        assert fresh
        assert sorted(pool.leases) == ["t1"]
    finally:
        await pool.close()


async def test_a_released_slot_goes_to_the_next_waiter(scratch: Path) -> None:
    pool = await opened(scratch, pool=1)
    try:
        first, _ = await pool.acquire("t0")
        waiter = asyncio.ensure_future(pool.acquire("t1"))
        await asyncio.sleep(0)
        await pool.release("t0")
        box, fresh = await asyncio.wait_for(waiter, BOUND)
        assert fresh
        assert box.slot is first.slot
        assert pool.counts["starts"] == 1
    finally:
        await pool.close()


async def test_waiting_past_the_acquire_timeout_is_an_error_naming_the_pool(
    scratch: Path,
) -> None:
    pool = await opened(scratch, pool=1, acquire_timeout=0.3)
    try:
        await pool.acquire("t0")
        with pytest.raises(SandboxError, match=r"all 1 slot.*in use for 0\.3 s"):
            await asyncio.wait_for(pool.acquire("t1"), BOUND)
        assert sorted(pool.leases) == ["t0"]
    finally:
        await pool.close()


async def test_the_end_of_the_run_removes_the_runs_node_directories(scratch: Path) -> None:
    pool = await opened(scratch, pool=1)
    other = await opened(scratch, pool=1, owner="w001")  # another worker of the run
    await pool.acquire("t0")
    await other.acquire("t1")
    assert run_root(pool.spec).is_dir()
    await other.close()
    await pool.close(run_finished=True)
    assert not run_root(pool.spec).exists()
    assert run_root(pool.spec).parent.is_dir()  # the per-user directory other runs share
