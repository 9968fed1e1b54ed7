"""`matrixhpc run --local`: real worker and engine processes, real ZeroMQ and HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_complete, dialogue_config, matrixhpc, records


def test_500_tasks_three_workers_two_replicas(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset)
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run",
        str(cfg),
        "--local",
        "dataset.trials=10",
        "workers.count=3",
        "--run-dir",
        str(run_dir),
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert_complete(recs, 500)
    assert {r["origin"] for r in recs} == {"w000", "w001", "w002"}
    replicas = {t["replica"] for r in recs for t in r["history"] if "replica" in t}
    assert replicas == {"r0", "r1"}, "both replicas should serve"
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["records"] == 500
    assert manifest["ok"] == 500
    assert sum(s["records"] for s in manifest["shards"]) == 500
    status = matrixhpc("status", str(run_dir))
    assert "500/500" in status.stdout
    assert "state=finished" in status.stdout
    calls = sum(1 for r in recs for t in r["history"] if "replica" in t)
    served = {  # the clients' per-replica counts, as `status` shows them
        line.split()[0]: int(line.split()[1])
        for line in status.stdout.splitlines()
        if line.split()[:1] in (["r0"], ["r1"])
    }
    assert set(served) == {"r0", "r1"}
    assert sum(served.values()) == calls
    # the figures `status --json` gives for the finished run, against its records
    shown = json.loads(matrixhpc("status", str(run_dir), "--json").stdout)
    run = json.loads((run_dir / "run.json").read_text())
    span = run["finished"] - run["launched"]
    assert shown["tasks_per_s_mean"] == pytest.approx(500 / span, rel=1e-6)
    turns = sum(len(r["history"]) for r in recs) / 500
    assert shown["totals"]["turns_written"] / shown["totals"]["written_here"] == pytest.approx(
        turns
    )
    assert shown["totals"]["held_turns"] == 0
    assert shown["eta"] == 0


def test_roles_split_across_worker_groups(tmp_path: Path, dataset: Path) -> None:
    groups = {
        "talkers": {"count": 2, "roles": ["student", "teacher"]},
        "judges": {"count": 1, "roles": ["extractor", "matcher"]},
    }
    cfg = dialogue_config(tmp_path, dataset, workers={"count": 3, "groups": groups})
    run_dir = tmp_path / "run"
    proc = matrixhpc("run", str(cfg), "--local", "dataset.trials=4", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert_complete(recs, 200)
    for r in recs:
        by_role = {t["role"]: t["worker"] for t in r["history"]}
        assert by_role["extractor"] == "w002"
        assert by_role["student"] in ("w000", "w001")
    judge = json.loads((run_dir / "status" / "w002.json").read_text())
    assert judge["received"] > 0
    assert judge["sent"] > 0


def test_misspelled_key_fails_before_launch(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset)
    run_dir = tmp_path / "run"
    proc = matrixhpc("run", str(cfg), "--local", "workers.cont=3", "--run-dir", str(run_dir))
    assert proc.returncode == 2
    assert "workers.cont" in proc.stderr
    assert "did you mean 'count'" in proc.stderr
    assert not run_dir.exists(), "nothing may be launched for a bad config"

    text = cfg.read_text().replace("repeat:", "repaet:")
    assert text != cfg.read_text()
    cfg.write_text(text)
    proc = matrixhpc("run", str(cfg), "--local", "--run-dir", str(run_dir))
    assert proc.returncode == 2
    assert "routing.repaet" in proc.stderr
    assert not run_dir.exists()
