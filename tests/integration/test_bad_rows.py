"""Bad input end to end: bad rows never stop a run; an unreadable file stops it before launch."""

from __future__ import annotations

import codecs
import gzip
import json
from pathlib import Path

from conftest import assert_complete, dialogue_config, matrixhpc, mcq_rows, records

BAD_LINES = [
    '{"question": "deep", "options": ' + "[" * 10_000 + "]" * 10_000 + ', "answer": "A"}',
    '{"question": "wide", "options": ["w"], "answer": ' + str(2**70) + "}",
    '{"question": "nan", "options": ["w"], "answer": NaN}',
    '{"question": "\\ud800", "options": ["w"], "answer": "A"}',
    '{"question": "truncated", ',
]


def test_every_kind_of_bad_row_is_recorded_and_every_good_row_written(tmp_path: Path) -> None:
    rows = [json.dumps(r) for r in mcq_rows(30)]
    for k, bad in enumerate(BAD_LINES):
        rows.insert(3 + 5 * k, bad)
    data = tmp_path / "mixed.jsonl"  # with a byte order mark, as some editors save it
    data.write_bytes(codecs.BOM_UTF8 + ("\n".join(rows) + "\n").encode())
    cfg = dialogue_config(tmp_path, data)
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run", str(cfg), "--local", "--engine", "simulated", "dataset.trials=2",
        "--run-dir", str(run_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_complete(records(run_dir), 60)
    errors = [
        json.loads(x) for x in (run_dir / "output" / "_errors.jsonl").read_text().splitlines()
    ]
    assert sorted(e["line"] for e in errors) == [4 + 5 * k for k in range(len(BAD_LINES))]
    assert all(e["reason"] for e in errors)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["total_tasks"] == 60
    assert run["bad_rows"] == len(BAD_LINES)
    status = matrixhpc("status", str(run_dir))
    assert "60/60" in status.stdout, status.stdout


def test_corrupt_gzip_dataset_is_a_clear_error_before_launch(tmp_path: Path) -> None:
    packed = gzip.compress("".join(json.dumps(r) + "\n" for r in mcq_rows(300)).encode())
    data = tmp_path / "mcq.jsonl.gz"
    data.write_bytes(packed[: len(packed) // 2])  # truncated mid-stream
    cfg = dialogue_config(tmp_path, data)
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run", str(cfg), "--local", "--engine", "simulated", "--run-dir", str(run_dir),
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("matrixhpc: dataset.path:")
    assert str(data) in proc.stderr
    assert "gzip" in proc.stderr
    assert not (run_dir / "run.json").exists(), "nothing may be launched"
