"""``check_config`` as a whole: a good workflow passes with a summary, problems come
grouped by key and once each, and the checks touch nothing on disk."""

from __future__ import annotations

from pathlib import Path

from sample_workflow import Workflow, workflow_fixture  # noqa: F401  (the `workflow` fixture)

from matrixhpc.check import check_config
from matrixhpc.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_workflow_has_no_problem(workflow: Workflow) -> None:
    report = workflow.check()
    assert report.problems == []
    assert report.summary == (
        "4 roles, graph routing, 2 python objects imported, 3 templates rendered on 3 rows, "
        "1 condition: no problems"
    )


def test_the_shipped_configs_have_no_problem() -> None:
    for name in ("hello", "coral"):
        report = check_config(load_config(ROOT / "configs" / f"{name}.yaml"))
        assert report.problems == [], name


def test_only_five_rows_are_read(workflow: Workflow) -> None:
    rows = "".join(f'{{"topic": "t{i}", "level": 1}}\n' for i in range(50))
    (workflow.dir / "rows.jsonl").write_text(rows)
    assert "rendered on 5 rows" in workflow.check().summary


def test_problems_of_one_key_come_together_once_each(workflow: Workflow) -> None:
    writer = workflow.config["roles"]["writer"]
    writer["prompt"] = "{{ row.topik }} {{ row.topik }} {{ state.vaild }}"
    workflow.config["routing"]["edges"]["writer"] = [{"when": "row.lvl > 1", "to": "checker"}]
    problems = workflow.problems()
    keys = [key for key, _ in problems]
    assert keys == ["roles.writer.prompt"] * 2 + ["routing.edges.writer.0.when"]
    assert len(set(problems)) == len(problems)


def test_checking_writes_nothing(workflow: Workflow) -> None:
    workflow.write()
    before = sorted(p.name for p in workflow.dir.iterdir())
    assert check_config(load_config(workflow.path)).problems == []
    after = sorted(p.name for p in workflow.dir.iterdir() if p.name != "__pycache__")
    assert after == before
