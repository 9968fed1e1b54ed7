"""The comparison's rows: cycled questions with unique ids, in both frameworks' fields."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.matrix.dataset import SOURCE, write_rows


def test_rows_cycle_the_questions_with_unique_ids(tmp_path: Path) -> None:
    source = [json.loads(line) for line in SOURCE.read_text().splitlines() if line.strip()]
    n = len(source) + 3
    path = write_rows(n, tmp_path / "rows.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == n
    assert len({r["id"] for r in rows}) == n
    assert all(r["id"] == r["question_id"] for r in rows)
    assert rows[len(source)]["question"] == source[0]["question"]
    assert all(set(r) == {"id", "question_id", "question", "options", "answer"} for r in rows)
    assert all(isinstance(r["options"], list) and r["answer"] in "ABCDEFGHIJ" for r in rows)
