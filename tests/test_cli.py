"""The commands over the Launcher protocol, short of a launch: ``resume`` refuses (and
changes nothing) when its checks fail, ``stop`` and ``status`` talk to the run's own
backend, and a run.json naming no known launcher is an error, not a traceback."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from matrixhpc.cli import main
from matrixhpc.config import load_config
from matrixhpc.data.writers import ShardWriter
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.launch.process import identity
from matrixhpc.launch.runinfo import record_run
from matrixhpc.rundir import RunDir
from matrixhpc.task import Task


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def rd(tmp_path: Path) -> RunDir:
    """A stopped local run of three rows, as its launch left it (nothing running)."""
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"i": i}) + "\n" for i in range(3)))
    cfg = {
        "name": "cli",
        "services": {},
        "roles": {"work": {"kind": "python", "function": "steps:step"}},
        "routing": {"kind": "sequential", "order": ["work"]},
        "dataset": {"path": str(data)},
        "workers": {"count": 1},
    }
    (tmp_path / "cli.yaml").write_text(yaml.safe_dump(cfg))
    run = RunDir(tmp_path / "run")
    config = load_config(tmp_path / "cli.yaml")
    run.create(config)
    record_run(run, config, "local", state="stopped")
    return run


def _edit_run(rd: RunDir, **fields: Any) -> None:
    run = read_json(rd.run_info)
    assert run is not None
    atomic_write_json(rd.run_info, {**run, **fields})


def _nothing_launched(rd: RunDir) -> bool:
    return not rd.pids.exists() and not (rd.logs / "launcher.log").exists()


def _change_input(rd: RunDir) -> None:
    data = Path(rd.load().dataset.path)
    data.write_text(data.read_text() + json.dumps({"i": 3}) + "\n")


def test_resume_refuses_a_changed_input(rd: RunDir) -> None:
    _change_input(rd)
    result = _invoke("resume", str(rd.root))
    assert result.exit_code == 2
    assert "refusing to resume: the input (" in result.stderr
    assert "--force" in result.stderr
    assert _nothing_launched(rd)


def test_resume_refuses_a_changed_config_and_keeps_the_old_one(rd: RunDir) -> None:
    before = rd.config.read_text()
    result = _invoke("resume", str(rd.root), "workers.window=11")
    assert result.exit_code == 2
    assert "refusing to resume: the config changed" in result.stderr
    assert rd.config.read_text() == before
    assert _nothing_launched(rd)


def test_a_refused_retry_leaves_the_failed_records_in_place(rd: RunDir) -> None:
    """--retry-failed retires records only once the resume may go on."""
    task = Task(id="w000-r0", seed=1, row={"i": 0}, origin="w000", status="failed")
    task.error = "tool down"
    writer = ShardWriter(rd.output, "w000", shard_records=100)
    writer.write(task.to_record())
    writer.close()
    shards = {p.name: p.read_bytes() for p in rd.output.glob("part-*.jsonl")}
    _change_input(rd)
    result = _invoke("resume", str(rd.root), "--retry-failed")
    assert result.exit_code == 2
    assert "the input" in result.stderr
    assert "retrying" not in result.stdout
    assert {p.name: p.read_bytes() for p in rd.output.glob("part-*.jsonl")} == shards
    assert list(rd.output.glob("_retired-*")) == []


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    yield proc
    proc.kill()
    proc.wait()


def test_resume_refuses_while_the_launcher_runs(
    rd: RunDir, sleeper: subprocess.Popen[bytes]
) -> None:
    me = identity(sleeper.pid)
    _edit_run(rd, launcher_pid=me["pid"], launcher_start=me["start"], launcher_host=None)
    result = _invoke("resume", str(rd.root), "--force")
    assert result.exit_code == 2
    assert f"is running (launcher pid {sleeper.pid}); stop it first" in result.stderr
    assert _nothing_launched(rd)


def test_resume_of_a_finished_run_has_nothing_to_do(rd: RunDir) -> None:
    _edit_run(rd, state="finished")
    result = _invoke("resume", str(rd.root))
    assert result.exit_code == 0
    assert "the run has finished; nothing to resume" in result.stdout


def test_resume_of_a_directory_without_a_run(tmp_path: Path) -> None:
    result = _invoke("resume", str(tmp_path))
    assert result.exit_code == 2
    assert f"{tmp_path} is not a run directory (no run.json)" in result.stderr


@pytest.mark.parametrize("command", ["resume", "stop"])
def test_an_unknown_launcher_is_an_error_naming_run_json(rd: RunDir, command: str) -> None:
    _edit_run(rd, launcher="ray")
    result = _invoke(command, str(rd.root))
    assert result.exit_code == 2
    assert "matrixhpc: run.json: launcher 'ray' is not one of local, slurm" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_stop_and_status_of_a_slurm_run_go_to_its_jobs(rd: RunDir) -> None:
    """No jobs submitted yet: nothing to cancel and no job table (no scheduler asked)."""
    _edit_run(rd, launcher="slurm")
    stopped = _invoke("stop", str(rd.root))
    assert stopped.exit_code == 0, stopped.output
    assert stopped.stdout == f"cancelled 0 job(s) of {rd.root}\n"
    status = _invoke("status", str(rd.root))
    assert status.exit_code == 0, status.output
    assert "slurm job" not in status.stdout


def test_stop_of_a_local_run_with_nothing_running(rd: RunDir) -> None:
    result = _invoke("stop", str(rd.root))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"stopped 0 process(es) of {rd.root}\n"


HELLO = str(Path(__file__).resolve().parents[1] / "configs" / "hello.yaml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "external"], "--engine external needs --url URL"),
        (["--url", "http://h:1/v1"], "--url and --model go with --engine"),
        (["--engine", "vllm", "--url", "http://h:1/v1"], "--url goes with --engine external"),
    ],
)
@pytest.mark.parametrize("command", ["run", "sbatch"])
def test_engine_flags_that_do_not_fit_are_errors_before_anything_starts(
    tmp_path: Path, command: str, args: list[str], message: str
) -> None:
    where = [HELLO, "--local"] if command == "run" else [HELLO, str(tmp_path / "out")]
    result = _invoke(command, *where, "--run-dir", str(tmp_path / "run"), *args)
    assert result.exit_code == 2
    assert f"matrixhpc: {message}" in result.output
    assert not (tmp_path / "run").exists()
    assert not (tmp_path / "out").exists()


def test_sbatch_with_engine_external_exports_servers_that_register_the_url(tmp_path: Path) -> None:
    out, url = tmp_path / "out", "http://gpu7:8000/v1"
    result = _invoke("sbatch", HELLO, str(out), "--engine", "external", "--url", url)
    assert result.exit_code == 0, result.output
    saved = load_config(out / "run" / "config.yaml").services["llm"]
    assert (saved.engine, saved.url, saved.replicas, saved.model) == ("external", url, 1, None)
    assert [p.name for p in sorted(out.glob("server-*.sbatch"))] == ["server-llm-0.sbatch"]
    assert "matrixhpc serve external" in (out / "server-llm-0.sbatch").read_text()
