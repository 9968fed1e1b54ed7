"""The Matrix side of the comparison: Coral with a fixed number of turns.

Runs inside the Matrix venv only (imports ``matrix``, ``ray``); never imported by matrixhpc.

Matrix's own Coral pieces are used as shipped: ``CoralAgent`` (teacher and student: its
message layout, its opening message that presents the problem), ``CoralMatchAgent`` (who
holds which answer, agreement, turn count), ``CoralDatasetLoader`` and
``CoralMetricsAccumulator``. Two pieces are ours, to make the workload the same as the
matrixhpc config next to this file (``coral_fixed.yaml``):

* :class:`FixedTurnsCoral`: Matrix's ``CoralOrchestrator`` ends a dialogue on agreement,
  which depends on the (random) text the simulated engine writes, i.e. on each framework's
  prompts. With the agreement exit removed, every task runs exactly ``max_turns`` LLM
  turns on both sides (an LLM error still ends it, as in Matrix);
* :class:`AnswerExtractor`: the extractor as a python step (no LLM call), as in matrixhpc's
  Coral workflow; Matrix ships it as an LLM agent. It fills the fields
  ``CoralMatchAgent`` reads (``extracted_answer``, ``valid_answer``).
"""

from __future__ import annotations

import re
from typing import Any

from matrix.agents.agent_actor import AgentActor
from matrix.agents.examples.ts_interaction import CoralOrchestrator

# "the correct answer is (C)" / "answer is C": the letter a speaker committed to
_COMMITTED = re.compile(r"answer\s+is\s*\(?\s*([A-Z])\b")


class FixedTurnsCoral(CoralOrchestrator):
    """Coral that stops only after ``max_turns`` LLM turns (or on an LLM error)."""

    async def is_done(self) -> bool:
        last = self.history[-1].response
        done = not last.get("status_ok", True) or last.get("rated_turns", 0) >= self.max_turns
        if done:
            self.status["success"] = last.get("agreement_correctness", False)
        return bool(done)


def committed_letter(text: str) -> str | None:
    """The last option letter the text commits to, if any."""
    hits = _COMMITTED.findall(text or "")
    return hits[-1] if hits else None


class AnswerExtractor(AgentActor):
    """A python step: reads the letter from the last speaker's turn (no LLM call)."""

    async def preprocess(self, orchestrator: Any) -> dict[str, Any]:
        text = await orchestrator.history[-1].response.get_async("text")
        letter = committed_letter(str(text or ""))
        return {
            "status_ok": True,
            "extracted_answer": letter,
            "valid_answer": letter is not None,
            "correct": letter is not None and letter == orchestrator.task_answer,
        }
