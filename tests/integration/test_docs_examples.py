"""The workflow guide's examples, run end to end on the simulated engine (real workers,
real engine processes), from a directory that is not the config's."""

from __future__ import annotations

from pathlib import Path

from conftest import matrixhpc, records

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(config: Path, run_dir: Path, *overrides: str) -> list[dict[str, object]]:
    proc = matrixhpc(
        "run",
        str(config),
        "--local",
        "--engine",
        "simulated",
        "services.llm.simulated.time_scale=0.001",
        *overrides,
        "--run-dir",
        str(run_dir),
        cwd=run_dir.parent,  # not the config's directory: its modules resolve from there
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return records(run_dir)


def test_function_routing_sends_each_question_to_its_expert(tmp_path: Path) -> None:
    recs = _dry_run(ROOT / "docs" / "examples" / "triage.yaml", tmp_path / "run")
    assert len(recs) == 60
    for rec in recs:
        roles = [t["role"] for t in rec["history"]]  # type: ignore[attr-defined]
        hard = rec["row"]["subject"] in ("physics", "chemistry", "logic")  # type: ignore[index]
        assert roles == ["classify", "expert" if hard else "tutor"], rec["id"]
        assert rec["status"] == "ok"
