"""``matrixhpc check``, ``run`` and ``sbatch`` as a user types them, on a workflow in a
directory of its own with its own module, typed from another directory.

Every mistake of issue 10 exits 2 with one line naming the key, and nothing is created
or launched; a good workflow runs end to end on the simulated engine, and its exported
sbatch scripts find the module too (run by ``bash`` here: the workers' script is a plain
shell script; tests/integration/test_local_slurm.py submits exported scripts to Slurm).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import matrixhpc, records

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "check"))
from sample_workflow import Workflow


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The user's shell: not the workflow's directory."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def _nothing_made(*places: Path) -> bool:
    return all(not p.exists() or not any(p.iterdir()) for p in places)


def test_a_good_workflow_checks_clean_from_another_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    workflow = Workflow(tmp_path / "proj")
    done = matrixhpc("check", str(workflow.write()), cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"{workflow.path}: 4 roles, graph routing, 2 python objects imported, 3 templates "
        "rendered on 3 rows, 1 condition: no problems"
    )
    assert _nothing_made(elsewhere)


def _edges_as_a_list(config: dict[str, Any], _workflow: Workflow) -> None:
    config["routing"]["edges"] = [{"from": "writer", "to": "checker"}]


def _no_module(config: dict[str, Any], _workflow: Workflow) -> None:
    config["roles"]["checker"]["function"] = "chekcs:judge"


def _no_attribute(config: dict[str, Any], workflow: Workflow) -> None:
    config["roles"]["checker"]["function"] = workflow.code("judeg")


def _not_an_agent(config: dict[str, Any], workflow: Workflow) -> None:
    config["roles"]["scorer"]["class"] = workflow.code("NotAnAgent")


def _row_field_missing(config: dict[str, Any], _workflow: Workflow) -> None:
    config["roles"]["writer"]["prompt"] = "Explain {{ row.topik }}."


def _state_typo(config: dict[str, Any], _workflow: Workflow) -> None:
    config["routing"]["edges"]["checker"][0]["when"] = "state.vaild"


def _broken_condition(config: dict[str, Any], _workflow: Workflow) -> None:
    config["routing"]["edges"]["checker"][0]["when"] = "not state.valid and and"


MISTAKES = {
    "edges as a list": (_edges_as_a_list, "routing.edges: "),
    "module not found": (_no_module, "roles.checker.function: cannot import 'chekcs:judge'"),
    "missing attribute": (_no_attribute, "has no attribute 'judeg' (did you mean 'judge'?)"),
    "not an Agent": (_not_an_agent, "roles.scorer.class: "),
    "row field": (_row_field_missing, "roles.writer.prompt: 'row.topik' is undefined"),
    "state typo": (_state_typo, "routing.edges.checker.0.when: 'state.vaild' is never set"),
    "broken condition": (
        _broken_condition,
        "routing.edges.checker.0.when: does not compile: 'and' where a value is expected",
    ),
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_every_mistake_of_the_issue_is_one_line_and_exit_2(
    tmp_path: Path, elsewhere: Path, mistake: str
) -> None:
    workflow = Workflow(tmp_path / "proj")
    spoil, expected = MISTAKES[mistake]
    spoil(workflow.config, workflow)
    done = matrixhpc("check", str(workflow.write()), cwd=elsewhere)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "matrixhpc: invalid config:"
    assert any(line.strip().startswith(expected) or expected in line for line in lines[1:]), lines
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert _nothing_made(elsewhere)


def test_run_and_sbatch_refuse_a_bad_config_before_creating_anything(
    tmp_path: Path, elsewhere: Path
) -> None:
    workflow = Workflow(tmp_path / "proj")
    _state_typo(workflow.config, workflow)
    config = str(workflow.write())
    run_dir, out_dir = tmp_path / "run", tmp_path / "scripts"
    ran = matrixhpc(
        "run", config, "--local", "--engine", "simulated", "--run-dir", str(run_dir), cwd=elsewhere
    )
    exported = matrixhpc("sbatch", config, str(out_dir), cwd=elsewhere)
    for done in (ran, exported):
        assert done.returncode == 2, done.stderr
        assert "routing.edges.checker.0.when: 'state.vaild' is never set" in done.stderr
        assert "Traceback" not in done.stderr
    assert not run_dir.exists()
    assert not out_dir.exists()
    assert _nothing_made(elsewhere)


def test_the_workflow_runs_from_another_directory_with_its_own_module(
    tmp_path: Path, elsewhere: Path
) -> None:
    """The module beside the config is found by the workers, wherever the user is."""
    workflow = Workflow(tmp_path / "proj")
    workflow.config["services"]["llm"]["simulated"] = {"time_scale": 0.001}
    run_dir = tmp_path / "run"
    done = matrixhpc(
        "run",
        str(workflow.write()),
        "--local",
        "--engine",
        "simulated",
        "--run-dir",
        str(run_dir),
        cwd=elsewhere,
    )
    assert done.returncode == 0, done.stderr
    written = records(run_dir)
    assert len(written) == 3
    for record in written:
        assert record["status"] == "ok", record["error"]
        roles = [turn["role"] for turn in record["history"]]
        assert roles == ["writer", "checker", "reviser", "checker", "scorer"]
        assert record["state"]["valid"] is True
        assert record["state"]["score"] == 4  # the custom agent ran
    assert _nothing_made(elsewhere)


def test_exported_sbatch_scripts_import_the_module_from_anywhere(
    tmp_path: Path, elsewhere: Path
) -> None:
    workflow = Workflow(tmp_path / "proj")
    workflow.config["services"] = {}
    workflow.config["roles"] = {
        name: workflow.config["roles"][name] for name in ("checker", "scorer")
    }
    workflow.config["routing"] = {"kind": "sequential", "order": ["checker", "scorer"]}
    out_dir = tmp_path / "scripts"
    exported = matrixhpc("sbatch", str(workflow.write()), str(out_dir), cwd=elsewhere)
    assert exported.returncode == 0, exported.stderr
    script = (out_dir / "workers.sbatch").read_text()
    assert f"# user code (python_path in the run's config.yaml): {workflow.dir}\n" in script
    job = tmp_path / "job"  # what a compute node's job has as its directory
    job.mkdir()
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "0"}
    done = subprocess.run(
        ["bash", str(out_dir / "workers.sbatch")],
        cwd=job,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = records(out_dir / "run")
    assert sorted(r["status"] for r in written) == ["ok"] * 3, [r["error"] for r in written]
    assert all(r["state"]["score"] == 1 for r in written)
