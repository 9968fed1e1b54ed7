"""The role API: an async handler over a task plus the resources it declares.

A handler reads the task (row, history, state), may update ``task.state`` and
returns the turn to append (or None). The worker appends it, stamps timings and
routes; an exception becomes a turn with an error, never a crashed worker.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from matrixhpc.llm.metadata import ROLE, TASK, TURN
from matrixhpc.llm.types import ChatClient
from matrixhpc.sandbox.types import SandboxProvider
from matrixhpc.task import Task, Turn


@dataclass(frozen=True, slots=True)
class Resources:
    """What a role needs from the node it runs on."""

    llm_service: str | None = None
    sandbox: str | None = None  # a name in the config's sandboxes


@dataclass(slots=True)
class AgentContext:
    """Services an agent may use; handed in by the worker that runs the step."""

    llm: ChatClient
    worker: str
    extras: dict[str, Any] = field(default_factory=dict)
    # the tasks' sandboxes on this worker (None: the config has none); agents use them
    # through matrixhpc.agents.sandboxing.TaskSandbox
    sandboxes: SandboxProvider | None = None


class Agent(ABC):
    """One role. Subclass it for a custom agent and name it in the config by import path."""

    resources: Resources = Resources()

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = options or {}

    def request_metadata(self, task: Task) -> dict[str, str]:
        """Who asks, for ``ctx.llm.chat(..., metadata=...)``: the role, the task and its
        turns so far. The simulated engine answers a role from its script by it (a dry run
        takes the branches a workflow's content decides); real engines never see it."""
        return {ROLE: self.name, TASK: task.id, TURN: str(len(task.history))}

    @abstractmethod
    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        """Run one step of ``task``; return the turn to record."""
