"""The rows both frameworks read: the repository's multiple-choice questions, cycled.

Each row carries ``id`` and ``question_id`` (Matrix's Coral names its tasks by the
latter), ``question``, ``options`` (a list: Matrix's loader turns it into lettered
choices, matrixhpc's templates letter it) and ``answer``. Rows are cycled from
``configs/data/mcq.jsonl`` with unique ids, so any task count is possible.
"""

from __future__ import annotations

import json
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "configs" / "data" / "mcq.jsonl"


def write_rows(tasks: int, path: Path, source: Path = SOURCE) -> Path:
    with source.open(encoding="utf-8") as fh:
        questions = [json.loads(line) for line in fh if line.strip()]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for i in range(tasks):
            q = questions[i % len(questions)]
            row = {"id": f"q{i:06d}", "question_id": f"q{i:06d}", "question": q["question"],
                   "options": q["options"], "answer": q["answer"]}  # fmt: skip
            out.write(json.dumps(row) + "\n")
    return path
