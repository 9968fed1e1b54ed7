"""One step: the agent's turn recorded, an exception turned into an error turn, routing."""

from __future__ import annotations

import pytest

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.errors import ResourceUnavailable
from matrixhpc.routing import SequentialRouter
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.runtime.stepping import advance, run_step
from matrixhpc.task import END, Task, Turn


class Echo(Agent):
    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        if task.row.get("boom"):
            raise RuntimeError("agent broke")
        return {"role": self.name, "content": f"hop {task.hop}"}


@pytest.mark.asyncio
@pytest.mark.parametrize("boom", [False, True])
async def test_a_step_records_its_turn_and_a_failure_fails_the_task(boom: bool) -> None:
    task = Task(id="r0-t0", seed=1, row={"boom": boom}, origin="w0")
    task.next = "a"
    stats = WorkerStats()
    ctx = AgentContext(llm=None, worker="w0")  # type: ignore[arg-type]
    turn = await run_step(Echo("a"), task, ctx, stats, "w0")
    assert turn is not None
    assert task.history == [turn]
    assert task.hop == 1
    assert turn["worker"] == "w0"
    assert turn["timings"]["end"] >= turn["timings"]["start"]
    assert stats.steps == 1
    assert stats.step_errors == int(boom)
    advance(SequentialRouter(["a"]), task)
    assert task.next == END
    assert task.finished
    assert task.status == ("failed" if boom else "ok")
    assert (task.error is not None) == boom
    assert not boom or "agent broke" in str(task.error)


class Unavailable(Agent):
    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        raise ResourceUnavailable("service 'llm': no live replica for 3600 s")


@pytest.mark.asyncio
async def test_an_outage_is_raised_with_the_task_untouched() -> None:
    task = Task(id="r0-t0", seed=1, row={}, origin="w0", next="a", hop=4)
    stats = WorkerStats()
    ctx = AgentContext(llm=None, worker="w0")  # type: ignore[arg-type]
    with pytest.raises(ResourceUnavailable, match="no live replica"):
        await run_step(Unavailable("a"), task, ctx, stats, "w0")
    assert (task.hop, task.history, task.status, stats.step_errors) == (4, [], "running", 0)


class Quiet(Agent):
    """A step that records no turn (a python step returning None)."""

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        return None


@pytest.mark.asyncio
@pytest.mark.parametrize("agent", [Echo("a"), Quiet("a")])
async def test_an_undefined_name_in_a_condition_fails_the_task_in_that_steps_turn(
    agent: Agent,
) -> None:
    """Not a silent false (the task used to end ``ok`` at once): the step's own turn, or a
    new one when it recorded none, carries the error naming the condition and the name."""
    task = Task(id="r0-t0", seed=1, row={}, origin="w0", next="a")
    task.history.append({"role": "z", "content": "earlier"})
    ctx = AgentContext(llm=None, worker="w0")  # type: ignore[arg-type]
    turn = await run_step(agent, task, ctx, WorkerStats(), "w0")
    router = SequentialRouter(["a", "b"], repeat=True, stop_when="state.done or state.vaild")
    task.state["done"] = False
    turn = advance(router, task, turn)
    error = "routing.stop_when 'state.done or state.vaild': 'state.vaild' is undefined"
    assert turn is not None
    assert turn is task.history[-1]
    assert (turn["role"], turn["error"]) == ("a", error)
    assert task.history[0] == {"role": "z", "content": "earlier"}  # not the earlier turn
    assert len(task.history) == 2
    assert (task.next, task.status, task.error) == (END, "failed", error)


@pytest.mark.asyncio
async def test_a_routing_error_after_a_failed_step_keeps_both_errors() -> None:
    task = Task(id="r0-t0", seed=1, row={"boom": True}, origin="w0", next="a")
    ctx = AgentContext(llm=None, worker="w0")  # type: ignore[arg-type]
    turn = await run_step(Echo("a"), task, ctx, WorkerStats(), "w0")
    router = SequentialRouter(["a"], repeat=True, stop_on_error=False, stop_when="state.x")
    turn = advance(router, task, turn)
    assert turn is not None
    assert turn["error"] == (
        "RuntimeError: agent broke; routing.stop_when 'state.x': 'state.x' is undefined"
    )
    assert task.status == "failed"
