"""`matrixhpc resume --retry-failed`: failed tasks run again once the cause is fixed, and
every id still ends with exactly one final record (the old ones kept aside)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import matrixhpc, records

FLAKY = '''
from pathlib import Path


def step(task):
    """Fails every third row while the 'broken' marker exists: a tool that was down."""
    if (Path(__file__).parent / "broken").exists() and task.row["i"] % 3 == 0:
        raise RuntimeError("tool down")
    return {"done": task.row["i"]}
'''


def _workflow(tmp_path: Path) -> Path:
    (tmp_path / "flaky.py").write_text(FLAKY)
    (tmp_path / "broken").touch()
    rows = "".join(json.dumps({"i": i}) + "\n" for i in range(30))
    (tmp_path / "rows.jsonl").write_text(rows)
    cfg = {
        "name": "flaky",
        "services": {},
        "roles": {"work": {"kind": "python", "function": "flaky:step"}},
        "routing": {"kind": "sequential", "order": ["work"]},
        "dataset": {"path": str(tmp_path / "rows.jsonl")},
        "workers": {"count": 2},
    }
    path = tmp_path / "flaky.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_failed_tasks_are_retried_once_the_cause_is_fixed(tmp_path: Path) -> None:
    cfg = _workflow(tmp_path)
    run_dir = tmp_path / "run"
    first = matrixhpc("run", str(cfg), "--local", "--run-dir", str(run_dir), cwd=tmp_path)
    assert first.returncode == 3, first.stderr  # a third failed: more than max_failed_fraction
    assert "10 x RuntimeError: tool down" in first.stderr
    before = {r["id"]: r["status"] for r in records(run_dir)}
    failed = {i for i, s in before.items() if s == "failed"}
    assert len(before) == 30
    assert len(failed) == 10
    (tmp_path / "broken").unlink()  # the cause is fixed
    again = matrixhpc("resume", str(run_dir), "--retry-failed", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "retrying 10 failed task(s)" in again.stdout
    after = records(run_dir)
    assert sorted(r["id"] for r in after) == sorted(before)  # one final record per id
    assert all(r["status"] == "ok" for r in after)
    retired = [
        json.loads(line)
        for path in (run_dir / "output").glob("_retired-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {r["id"] for r in retired} == failed
    assert all(r["status"] == "failed" for r in retired)
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["records"] == 30
    assert manifest["state"] == "finished"
