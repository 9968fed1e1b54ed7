"""Where the dispatcher sends a task: its sandbox holder first, also after waiting.

A real registry and peer directory on disk; the hand-offs are recorded instead of sent
(the transport has its own tests), time is a :class:`ManualClock`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.agents.sandboxing import OPS
from matrixhpc.codec import FrameType
from matrixhpc.registry import WORKERS, Registry
from matrixhpc.runtime.clock import ManualClock
from matrixhpc.runtime.dispatch import Dispatcher
from matrixhpc.runtime.peers import PeerDirectory
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.task import Task

pytestmark = pytest.mark.asyncio


class Sent:
    def __init__(self) -> None:
        self.to: list[str] = []

    async def send(self, task: Task, peer: str, frame: FrameType) -> None:
        self.to.append(peer)


class Admitter:
    async def before_leaving(self, task: Task) -> None:
        pass


class Holdings:
    def holds(self, task: Task) -> bool:
        return True


def register(reg: Registry, name: str, roles: list[str], active: int) -> None:
    entry: dict[str, Any] = {
        "address": f"tcp://127.0.0.1:{5000 + int(name[1:])}",
        "roles": roles,
        "active": active,
        "queued": 0,
        "max_active": 100,
        "state": "running",
    }
    reg.register(WORKERS, name, entry, ttl=-1.0)


def sandboxed_task() -> Task:
    """A task whose last sandbox operation ran on w1, next to run there again."""
    turn = {"role": "run", "worker": "w1", "data": {OPS: [{"sandbox": "tools", "op": "exec"}]}}
    return Task(id="t1", seed=0, row={}, origin="w0", next="run", history=[turn])


def dispatcher(tmp_path: Path, sandboxed: bool) -> tuple[Dispatcher, Registry, Sent, ManualClock]:
    reg = Registry(tmp_path / "registry", scan_interval=60.0, fresh_floor=0.0)
    sent, clock = Sent(), ManualClock()
    d = Dispatcher(
        "w0",
        ["write"],
        Holdings(),  # type: ignore[arg-type]
        PeerDirectory(reg, "w0"),
        sent,  # type: ignore[arg-type]
        Admitter(),  # type: ignore[arg-type]
        WorkerStats(),
        clock,
        lambda task, why: pytest.fail(f"driven locally: {why}"),
        sandboxed=sandboxed,
    )
    return d, reg, sent, clock


async def test_a_task_goes_to_its_sandbox_holder_though_another_is_idler(tmp_path: Path) -> None:
    d, reg, sent, _ = dispatcher(tmp_path, sandboxed=True)
    register(reg, "w1", ["run"], active=90)
    register(reg, "w2", ["run"], active=0)
    d.peers.refresh(fresh=True)
    await d.dispatch(sandboxed_task())
    assert sent.to == ["w1"]


async def test_without_sandboxes_the_history_is_not_consulted(tmp_path: Path) -> None:
    d, reg, sent, _ = dispatcher(tmp_path, sandboxed=False)
    register(reg, "w1", ["run"], active=90)
    register(reg, "w2", ["run"], active=0)
    d.peers.refresh(fresh=True)
    await d.dispatch(sandboxed_task())
    assert sent.to == ["w2"]  # the least loaded


async def test_a_task_that_waited_for_its_role_still_goes_back_to_its_holder(
    tmp_path: Path,
) -> None:
    d, reg, sent, clock = dispatcher(tmp_path, sandboxed=True)
    going = asyncio.ensure_future(d.dispatch(sandboxed_task()))
    for _ in range(3):  # nobody hosts "run": the task waits, polling
        await asyncio.sleep(0)
        clock.advance(1.0)
    assert not going.done()
    assert d.waiting == {"run": 1}
    register(reg, "w2", ["run"], active=0)  # both come back (a requeue), w1 busier
    register(reg, "w1", ["run"], active=90)
    for _ in range(20):
        clock.advance(5.0)
        await asyncio.sleep(0)
        if going.done():
            break
    await asyncio.wait_for(going, 5.0)
    assert sent.to == ["w1"]
    assert d.waiting == {"run": 0}
