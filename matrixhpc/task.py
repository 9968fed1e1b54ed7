"""The Task record: one unit of work that carries its whole state from agent to agent.

Turns are plain dicts (not objects) because they are appended on every step and
travel through msgpack on every hop: a dict costs nothing to encode and the output
record is the history as-is.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict

END = "__end__"
"""Routing marker: the task has no next role and goes back to its origin."""


class Usage(TypedDict, total=False):
    prompt_tokens: int
    completion_tokens: int


class Turn(TypedDict, total=False):
    role: str
    content: str
    data: dict[str, Any]
    usage: Usage
    timings: dict[str, float]
    error: str | None
    worker: str
    replica: str
    finish_reason: str


@dataclass(slots=True)
class Task:
    id: str
    seed: int
    row: dict[str, Any]
    origin: str
    next: str = END
    attempt: int = 0
    token: int = 0  # random per admission: the origin accepts a return only with its token
    hop: int = 0
    status: str = "running"
    history: list[Turn] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    created: float = field(default_factory=time.time)
    updated: float = 0.0
    ended: str | None = None  # why a task ended early though ok, e.g. "max_steps"

    def start_from(self, initial: Mapping[str, Any]) -> None:
        """Take the workflow's initial state (the config's ``state:``) under what admission
        set (``trial``); a deep copy, so that no two tasks share a list or a dict."""
        if initial:
            self.state = {**copy.deepcopy(dict(initial)), **self.state}

    @property
    def finished(self) -> bool:
        return self.next == END

    def last_turn(self, role: str | None = None) -> Turn | None:
        """The most recent turn, optionally of one role (agents read their partner's)."""
        for turn in reversed(self.history):
            if role is None or turn.get("role") == role:
                found: Turn = turn
                return found
        return None

    def output_tokens(self) -> int:
        return sum(t.get("usage", {}).get("completion_tokens", 0) for t in self.history)

    def to_record(self) -> dict[str, Any]:
        """The output record written once by the origin."""
        return {
            "id": self.id,
            "attempt": self.attempt,
            "seed": self.seed,
            "origin": self.origin,
            "status": self.status,
            "error": self.error,
            "row": self.row,
            "state": self.state,
            "history": self.history,
            "hops": self.hop,
            "created": self.created,
            "finished": self.updated,
            "ended": self.ended,
        }
