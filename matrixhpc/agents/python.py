"""The plain-Python agent: a function over the task, sync or async, by import path.

The function returns a dict of state updates (merged into ``task.state`` and
recorded as the turn's ``data``) or None. It may also return a full turn by
including a ``content`` key under ``"_turn"``; most functions do not need to.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.task import Task, Turn

PythonStep = Callable[..., Any]


class PythonAgent(Agent):
    def __init__(self, name: str, fn: PythonStep, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        self.takes_options = len(inspect.signature(fn).parameters) >= 2

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        started = time.time()
        args = (task, self.options) if self.takes_options else (task,)
        updates = await self.fn(*args) if self.is_async else self.fn(*args)
        if updates is None:
            return None
        if not isinstance(updates, dict):
            raise TypeError(f"{self.name}: a python step returns a dict or None")
        turn_override = updates.pop("_turn", None)
        task.state.update(updates)
        turn: Turn = {
            "role": self.name,
            "content": "",
            "data": updates,
            "timings": {"start": started, "end": time.time()},
        }
        if isinstance(turn_override, dict):
            turn.update(turn_override)  # type: ignore[typeddict-item]
        return turn
