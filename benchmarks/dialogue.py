"""The benchmark's roles: a speaking agent whose reply length the row fixes, and a cheap judge.

:class:`DialogueTurn` is matrixhpc's own :class:`~matrixhpc.agents.llm.LLMAgent` (same
messages: the system prompt, then the dialogue so far, own turns as ``assistant``; same
turn record) with one difference: turn ``i`` of a task asks for exactly
``row["tokens"][i]`` output tokens (``max_tokens`` + ``ignore_eos``), so the simulated
engine produces the workload's lengths and every design generates the same tokens.

:func:`count_turns` is the judge: a python step after every spoken turn that counts them;
the routing stops a dialogue when ``state.turns >= row.turns``.

All designs load these through the same generated config (``roles.<r>.kind: custom``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from matrixhpc.agents.base import AgentContext
from matrixhpc.agents.llm import LLMAgent
from matrixhpc.llm.types import ChatClient, ChatResult
from matrixhpc.task import Task, Turn

SYSTEM = (
    "You are working with a partner on this question:\n{{ row.question }}\n"
    "Reason step by step, point out your partner's mistakes, keep each reply short."
)
OPENING = "Let's solve this question together. What do you think?"
SPEAKERS = ("student", "teacher")


@dataclass(frozen=True, slots=True)
class _FixedLength:
    """A chat client that pins the reply length of every call it forwards."""

    client: ChatClient
    tokens: int

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChatResult:
        pinned = {**params, "max_tokens": self.tokens, "ignore_eos": True}
        return await self.client.chat(
            service, messages, pinned, sticky_key=sticky_key, metadata=metadata
        )


class DialogueTurn(LLMAgent):
    """Options: ``service`` (default ``llm``), ``dialogue`` (the speaking roles),
    ``system``/``prompt`` (Jinja, defaults above), ``params``, ``sticky``."""

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        opts = dict(options or {})
        super().__init__(
            name,
            service=str(opts.get("service", "llm")),
            system=opts.get("system", SYSTEM),
            prompt=opts.get("prompt", OPENING),
            dialogue=list(opts.get("dialogue", SPEAKERS)),
            params=dict(opts.get("params", {})),
            sticky=bool(opts.get("sticky", True)),
            options=opts,
        )

    @staticmethod
    def turn_tokens(task: Task) -> int:
        """Output tokens of the task's next turn: ``row.tokens[state.turns]``."""
        tokens = task.row["tokens"]
        index = min(int(task.state.get("turns", 0)), len(tokens) - 1)
        return int(tokens[index])

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        pinned = AgentContext(_FixedLength(ctx.llm, self.turn_tokens(task)), ctx.worker, ctx.extras)
        return await super().__call__(task, pinned)


def count_turns(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The judge: how many turns the speakers have taken (``state.turns``)."""
    speakers = options.get("roles", SPEAKERS)
    return {"turns": sum(1 for t in task.history if t.get("role") in speakers)}
