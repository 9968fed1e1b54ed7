"""One step of one task: call the role's agent, record its turn, choose what comes next.

Shared by the worker and by the benchmarks' baseline designs, so that every design
steps tasks with the same code and only the scheduling around it differs.
"""

from __future__ import annotations

import asyncio
import time

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.errors import ResourceUnavailable
from matrixhpc.routing import Router, RoutingError
from matrixhpc.runtime.stats import WorkerStats
from matrixhpc.task import END, Task, Turn


async def run_step(
    agent: Agent, task: Task, ctx: AgentContext, stats: WorkerStats, worker: str
) -> Turn | None:
    """Run ``agent`` on ``task`` once and append its turn; an exception becomes an error
    turn (a step's failure is the task's, never the worker's) — except an outage of a
    resource the step needs, which is raised with the task untouched: the task did not
    fail, it must wait (or be resumed) until the resource is back."""
    started = time.time()
    try:
        turn = await agent(task, ctx)
    except (asyncio.CancelledError, ResourceUnavailable):
        raise
    except Exception as exc:  # noqa: BLE001  # any failure of the agent is the task's error turn
        stats.step_errors += 1
        turn = {"role": agent.name, "content": "", "error": f"{type(exc).__name__}: {exc}"}
    task.hop += 1
    stats.steps += 1
    if turn is not None:
        turn["worker"] = worker
        turn.setdefault("timings", {"start": started, "end": time.time()})
        stats.record_turn(agent.name, turn)  # type: ignore[arg-type]
        task.history.append(turn)
    return turn


def advance(router: Router, task: Task, turn: Turn | None = None) -> Turn | None:
    """Pick the next role; a task that has reached the end gets its final status.

    ``turn`` is what the step that just ran recorded (None: nothing). A condition that
    cannot be evaluated on the task (an undefined name) is an error of that step: it is
    recorded in its turn (a new one if the step recorded none) and the task ends
    ``failed``. Returns the step's turn as it is now, for the journal."""
    try:
        task.next = router.after(task)
    except RoutingError as exc:
        turn = _with_error(task, turn, str(exc))
        task.next = END
    if task.finished:
        conclude(task)
    return turn


def _with_error(task: Task, turn: Turn | None, error: str) -> Turn:
    if turn is None:
        turn = {"role": task.next, "content": ""}
        task.history.append(turn)
    earlier = turn.get("error")
    turn["error"] = f"{earlier}; {error}" if earlier else error
    return turn


def conclude(task: Task) -> None:
    """A finished task fails if its last turn carries an error."""
    last = task.last_turn()
    task.error = last.get("error") if last else None
    task.status = "failed" if task.error else "ok"
    task.updated = time.time()
