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


def takes_options(fn: PythonStep) -> bool:
    """Whether ``fn`` is called ``fn(task, options)`` (two positional parameters, or
    ``*args``) rather than ``fn(task)``."""
    positional = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)


class PythonAgent(Agent):
    def __init__(self, name: str, fn: PythonStep, options: dict[str, Any] | None = None) -> None:
        super().__init__(name, options)
        self.fn = fn
        self.takes_options = takes_options(fn)

    # ctx is unused: a python step sees only the task, but Agent's signature has it
    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:  # noqa: ARG002
        started = time.time()
        args = (task, self.options) if self.takes_options else (task,)
        updates = self.fn(*args)
        if inspect.isawaitable(updates):  # async functions, also behind sync decorators
            updates = await updates
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
