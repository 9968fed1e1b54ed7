"""Which output records are complete: every LLM turn there, ok, and of the pinned length.

The two frameworks write different records (matrixhpc: ``history`` of turns with
``role``, ``usage`` and ``error``; Matrix: ``history`` of ``{agent, response}`` with the
response's ``usage`` and ``status_ok``, its tombstones ``{status: "lost"}``). Each is
reduced here to its LLM turns as ``(ok, completion_tokens)`` pairs, and a record is
complete when it has exactly ``turns`` of them, all ok, each ``max_tokens`` long.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

SPEAKERS = ("teacher", "student")

LLMTurns = list[tuple[bool, int]]


def matrixhpc_turns(record: dict[str, Any]) -> LLMTurns:
    out: LLMTurns = []
    for turn in record.get("history", []):
        if turn.get("role") in SPEAKERS:
            tokens = int((turn.get("usage") or {}).get("completion_tokens", 0))
            out.append((not turn.get("error") and record.get("status") == "ok", tokens))
    return out


def matrix_turns(record: dict[str, Any]) -> LLMTurns:
    """Matrix's LLM turns; its opening message (the student presenting the problem, no
    LLM call, hence no usage) is not one."""
    out: LLMTurns = []
    for entry in record.get("history", []):
        response = entry.get("response") or {}
        if entry.get("agent") in SPEAKERS and ("usage" in response or "error" in response):
            tokens = int((response.get("usage") or {}).get("completion_tokens", 0))
            out.append((bool(response.get("status_ok", False)) and "error" not in response,
                        tokens))  # fmt: skip
    return out


def is_complete(turns: LLMTurns, expected_turns: int, max_tokens: int) -> bool:
    return len(turns) == expected_turns and all(ok and n == max_tokens for ok, n in turns)


def read_jsonl(paths: Iterable[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            records.extend(json.loads(line) for line in fh if line.strip())
    return records


def tally(
    records: list[dict[str, Any]],
    turns_of: Callable[[dict[str, Any]], LLMTurns],
    expected_turns: int,
    max_tokens: int,
) -> dict[str, int]:
    """Records written, records complete, and the output tokens the records account for."""
    per_record = [turns_of(r) for r in records]
    return {
        "records": len(records),
        "records_complete": sum(is_complete(t, expected_turns, max_tokens) for t in per_record),
        "record_tokens": sum(n for t in per_record for _, n in t),
    }
