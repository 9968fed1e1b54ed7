"""Collaborative reasoning (Coral): the non-LLM steps.

A teacher and a student discuss a multiple-choice question in alternating
turns. ``extract_answer`` reads the letter each side committed to in its last
turn; ``match_answers`` decides whether they agree (which stops the dialogue)
and whether the agreed answer is right.
"""

from __future__ import annotations

import re
from typing import Any

from matrixhpc.task import Task

# "answer is" in any case; then a bracketed letter in any case, a capital not followed
# by letters, or a lowercase letter only before punctuation or the end ("the answer is
# a rotation" must not read as option A)
_COMMITTED = re.compile(
    r"(?i:answer\s+is)\s*[:\-]?\s*\**\s*"
    r"(?:\(\s*([A-Ja-j])\s*\)|([A-J])(?![A-Za-z])|([a-j])(?=\s*(?:$|[.,;:!?*)])))"
)
_BRACKETED = re.compile(r"\(([A-J])\)")


def find_letter(text: str, valid: str) -> str | None:
    """The last committed letter ("the correct answer is (C)"), else the last "(C)"."""
    for pattern in (_COMMITTED, _BRACKETED):
        hits = [next(g for g in m.groups() if g).upper() for m in pattern.finditer(text)]
        hits = [h for h in hits if h in valid]
        if hits:
            return hits[-1]
    return None


def _speakers(options: dict[str, Any]) -> list[str]:
    return list(options.get("roles", ["teacher", "student"]))


def extract_answer(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    speakers = _speakers(options)
    last = next((t for t in reversed(task.history) if t.get("role") in speakers), None)
    answers = dict(task.state.get("answers", {}))
    if last is None:
        return {"answers": answers, "extracted": None}
    valid = "ABCDEFGHIJ"[: len(task.row.get("options", [])) or 10]
    letter = find_letter(last.get("content", ""), valid)
    if letter is not None:  # a turn that commits to nothing keeps the side's last answer
        answers[last["role"]] = letter
    return {"answers": answers, "extracted": letter}


def match_answers(task: Task, options: dict[str, Any]) -> dict[str, Any]:
    speakers = _speakers(options)
    answers = task.state.get("answers", {})
    picks = [answers.get(role) for role in speakers]
    agreed = picks[0] is not None and all(p == picks[0] for p in picks)
    turns = sum(1 for t in task.history if t.get("role") in speakers)
    truth = str(task.row.get("answer", "")).strip().upper()
    return {
        "turns": turns,
        "agreed": agreed,
        "final_answer": picks[0] if agreed else None,
        "correct": bool(agreed and picks[0] == truth),
    }
