"""A finished run whose tasks failed says why and exits non-zero (run.max_failed_fraction)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import dialogue_config, matrixhpc, records

# a python step that returns a bool, not a dict: every task fails at its first matcher turn
FAILING = "roles.matcher.function=operator:truth"


def test_a_run_whose_every_task_failed_exits_3_with_the_errors(
    tmp_path: Path, dataset: Path
) -> None:
    cfg = dialogue_config(tmp_path, dataset)
    run_dir = tmp_path / "run"
    proc = matrixhpc("run", str(cfg), "--local", FAILING, "--run-dir", str(run_dir))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    recs = records(run_dir)
    assert recs
    assert all(r["status"] == "failed" for r in recs)
    assert f"{len(recs)} of {len(recs)} tasks failed (100%)" in out
    assert f"{len(recs)} x TypeError: matcher: a python step returns a dict or None" in out
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["top_errors"] == [
        ["TypeError: matcher: a python step returns a dict or None", len(recs)]
    ]


def test_the_threshold_is_the_users(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset)
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run", str(cfg), "--local", FAILING, "run.max_failed_fraction=1", "--run-dir", str(run_dir)
    )
    assert proc.returncode == 0, proc.stderr
    assert "most frequent error:" in proc.stdout + proc.stderr
