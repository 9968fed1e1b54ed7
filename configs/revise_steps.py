"""The python step and the custom agent of ``revise.yaml`` (the workflow guide's example).

They sit next to the config, not in an installed package: matrixhpc imports a config's
``module:attr`` names from the config's directory (and its ``python_path:``), on this
machine and on Slurm compute nodes alike.
"""

from __future__ import annotations

import re
from typing import Any

from matrixhpc.agents.base import Agent, AgentContext
from matrixhpc.llm.types import LLMError
from matrixhpc.task import Task, Turn

VERDICT = re.compile(r"^\W*(VALID|INVALID)\b[\s:.-]*(.*)", re.IGNORECASE | re.DOTALL)
SCORE = re.compile(r"\b([1-5])\b")


def read_verdict(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    """The checker's reply as state: ``valid``, its ``feedback``, and how many ``rounds``
    of checking the draft has had. A reply that is neither VALID nor INVALID counts as
    INVALID with the whole reply as feedback (the reviser still gets something to act on)."""
    reply = (task.last_turn(options.get("checker", "checker")) or {}).get("content", "")
    match = VERDICT.match(reply)
    valid = bool(match) and match.group(1).upper() == "VALID"  # type: ignore[union-attr]
    feedback = (match.group(2) if match else reply).strip()
    return {"valid": valid, "feedback": feedback, "rounds": task.state.get("rounds", 0) + 1}


class Judge(Agent):
    """A custom agent: asks the LLM to grade the solver's answer from 1 to 5 and keeps
    the grade in ``state.score`` (None when the reply holds no grade). Custom agents get
    the run's LLM client in ``ctx.llm``, as the built-in LLM agent does; passing
    ``request_metadata`` tells a simulated engine's script which role asks."""

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        draft = (task.last_turn("reviser") or task.last_turn("writer") or {}).get("content", "")
        answer = (task.last_turn("solver") or {}).get("content", "")
        messages = [
            {"role": "system", "content": "You grade answers. Reply with one digit, 1 to 5."},
            {"role": "user", "content": f"Explanation:\n{draft}\n\nStudent answer:\n{answer}"},
        ]
        service = self.options.get("service", "llm")
        try:
            result = await ctx.llm.chat(
                service,
                messages,
                {"max_tokens": 4, "seed": task.seed},
                metadata=self.request_metadata(task),  # who asks: a dry run's script answers
            )
        except LLMError as exc:
            return {"role": self.name, "content": "", "error": str(exc)}
        found = SCORE.search(result.text)
        task.state["score"] = int(found.group(1)) if found else None
        return {"role": self.name, "content": result.text, "data": {"score": task.state["score"]}}
