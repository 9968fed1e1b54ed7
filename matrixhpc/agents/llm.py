"""The built-in LLM agent: Jinja templates over the task, sampling params, one service.

Messages are: the rendered ``system`` prompt, the rendered ``prompt`` as the
opening user message, then the turns of the ``dialogue`` roles in order, this
role's own turns as ``assistant`` and the others' as ``user`` — so each side of a
debate sees the conversation from its own seat and a replica's prefix cache sees
a growing, stable prefix. Consecutive messages of one role are merged because
many chat templates reject them.
"""

from __future__ import annotations

import time
from typing import Any

from matrixhpc.agents.base import Agent, AgentContext, Resources
from matrixhpc.agents.templates import compile_template, template_context
from matrixhpc.llm.types import LLMError
from matrixhpc.task import Task, Turn


class LLMAgent(Agent):
    def __init__(
        self,
        name: str,
        *,
        service: str,
        system: str | None,
        prompt: str | None,
        dialogue: list[str],
        params: dict[str, Any],
        sticky: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, options)
        self.resources = Resources(llm_service=service)
        self.service = service
        self.system = compile_template(system) if system else None
        self.prompt = compile_template(prompt) if prompt else None
        self.dialogue = set(dialogue)
        self.params = params
        self.sticky = sticky

    def messages(self, task: Task) -> list[dict[str, Any]]:
        ctx = template_context(task)
        out: list[dict[str, Any]] = []
        if self.system:
            out.append({"role": "system", "content": self.system.render(ctx)})
        if self.prompt:
            opening = self.prompt.render(ctx)
            if opening.strip():
                out.append({"role": "user", "content": opening})
        for turn in task.history:
            if turn.get("role") in self.dialogue and turn.get("content"):
                seat = "assistant" if turn["role"] == self.name else "user"
                _append_merged(out, seat, turn["content"])
        return out

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        messages = self.messages(task)
        started = time.time()
        key = task.id if self.sticky else None
        params = {"seed": task.seed, **self.params}
        try:
            result = await ctx.llm.chat(
                self.service,
                messages,
                params,
                sticky_key=key,
                metadata=self.request_metadata(task),
            )
        except LLMError as exc:
            return {
                "role": self.name,
                "content": "",
                "error": str(exc),
                "timings": {"start": started, "end": time.time()},
            }
        turn: Turn = {
            "role": self.name,
            "content": result.text,
            "usage": {
                "prompt_tokens": result.usage.get("prompt_tokens", 0),
                "completion_tokens": result.usage.get("completion_tokens", 0),
            },
            "timings": {"start": started, "end": time.time(), "latency": result.latency},
            "replica": result.replica,
            "finish_reason": result.finish_reason,
        }
        if result.tool_calls:
            turn["data"] = {"tool_calls": result.tool_calls}
        if result.attempts > 1:
            turn.setdefault("data", {})["retries"] = result.errors
        return turn


def _append_merged(messages: list[dict[str, Any]], role: str, content: str) -> None:
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"] += "\n\n" + content
    else:
        messages.append({"role": role, "content": content})
