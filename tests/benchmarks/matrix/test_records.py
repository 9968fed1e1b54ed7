"""Complete records of either framework: every LLM turn there, ok, of the pinned length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.matrix.records import (
    is_complete,
    matrix_turns,
    matrixhpc_turns,
    read_jsonl,
    tally,
)


def matrixhpc_record(tokens: list[int], status: str = "ok") -> dict[str, Any]:
    history: list[dict[str, Any]] = []
    for i, n in enumerate(tokens):
        role = "teacher" if i % 2 == 0 else "student"
        history.append({"role": role, "content": "x", "usage": {"completion_tokens": n}})
        history.append({"role": "extractor", "content": "", "data": {}})
    return {"id": "t", "status": status, "history": history}


def matrix_record(tokens: list[int]) -> dict[str, Any]:
    history: list[dict[str, Any]] = [{"agent": "student", "response": {"text": "problem"}}]
    for i, n in enumerate(tokens):
        agent = "teacher" if i % 2 == 0 else "student"
        usage = {"completion_tokens": n}
        history.append({"agent": agent, "response": {"text": "x", "usage": usage,
                                                     "status_ok": True}})  # fmt: skip
        history.append({"agent": "answer_matcher", "response": {"status_ok": True}})
    return {"id": "t", "history": history, "status": {}}


def test_matrixhpc_records() -> None:
    assert matrixhpc_turns(matrixhpc_record([8, 8])) == [(True, 8), (True, 8)]
    assert is_complete(matrixhpc_turns(matrixhpc_record([8, 8])), 2, 8)
    assert not is_complete(matrixhpc_turns(matrixhpc_record([8, 7])), 2, 8)
    assert not is_complete(matrixhpc_turns(matrixhpc_record([8])), 2, 8)
    assert not is_complete(matrixhpc_turns(matrixhpc_record([8, 8], "failed")), 2, 8)


def test_matrix_records_skip_the_opening_message() -> None:
    assert matrix_turns(matrix_record([8, 8, 8])) == [(True, 8)] * 3
    errored = matrix_record([8])
    errored["history"].append({"agent": "student", "response": {"error": "boom",
                                                                "status_ok": False}})  # fmt: skip
    assert matrix_turns(errored) == [(True, 8), (False, 0)]
    assert not is_complete(matrix_turns(errored), 2, 8)
    assert matrix_turns({"id": "t", "status": "lost", "error": "actor died"}) == []


def test_tally_reads_files(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    records = [matrix_record([8, 8]), matrix_record([8, 3])]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + "\n")
    got = tally(read_jsonl([path]), matrix_turns, expected_turns=2, max_tokens=8)
    assert got == {"records": 2, "records_complete": 1, "record_tokens": 27}
