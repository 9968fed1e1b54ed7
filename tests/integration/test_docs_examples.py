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


# every edge of revise.yaml's graph, END included
REVISE_EDGES = {
    ("writer", "checker"),
    ("checker", "verdict"),
    ("verdict", "solver"),
    ("verdict", "reviser"),
    ("verdict", "END"),
    ("reviser", "checker"),
    ("solver", "judge"),
    ("judge", "END"),
}


def test_the_guides_dry_run_takes_every_edge_of_the_graph(tmp_path: Path) -> None:
    """The scripted checker says VALID half of the time: valid drafts are solved and
    judged, invalid ones revised, three invalid rounds end the task; the judge (a custom
    agent) is scripted too."""
    recs = _dry_run(ROOT / "configs" / "revise.yaml", tmp_path / "run", "dataset.trials=2")
    assert len(recs) == 60
    taken = set()
    for rec in recs:
        roles = [t["role"] for t in rec["history"]]  # type: ignore[attr-defined]
        taken |= set(zip(roles, [*roles[1:], "END"], strict=True))
        state = rec["state"]
        assert rec["status"] == "ok"
        assert state["rounds"] == roles.count("checker") <= 3  # type: ignore[index]
        if state["valid"]:  # type: ignore[index]
            assert roles[-2:] == ["solver", "judge"]
            assert state["score"] in (2, 4, 5)  # type: ignore[index]
        else:
            assert state["rounds"] == 3  # type: ignore[index]
    assert taken == REVISE_EDGES
