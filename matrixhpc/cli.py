"""The ``matrixhpc`` command: thin click commands that call the layers below."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from matrixhpc.config import ConfigError, RunConfig, load_config
from matrixhpc.config.engine_swap import ENGINES, engine_overrides
from matrixhpc.data.readers import DatasetError, check_dataset
from matrixhpc.rundir import RunDir, default_run_dir

if TYPE_CHECKING:
    from matrixhpc.launch.launcher import Launcher
    from matrixhpc.launch.runinfo import Fingerprints

EXIT_RESUMABLE = 75

EngineSwap = tuple[str | None, str | None]  # --url, --model of --engine


def _engine_options(fn: click.decorators.FC) -> click.decorators.FC:
    """``--engine`` and the endpoint flags of ``external``, the same on run and sbatch."""
    for option in reversed(
        [
            click.option(
                "--engine",
                type=click.Choice(ENGINES),
                help="Swap every LLM service for this engine (simulated = dry run; "
                "external = the endpoint at --url).",
            ),
            click.option("--url", default=None, help="--engine external: base URL (.../v1)."),
            click.option(
                "--model",
                default=None,
                help="The model to request (with external, default: the endpoint's first).",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"matrixhpc: {message}", err=True)
    sys.exit(code)


def _load(
    config: Path,
    overrides: list[str],
    engine: str | None,
    swap: EngineSwap = (None, None),
    *,
    resolved: bool = False,
) -> RunConfig:
    try:
        if engine is not None or swap != (None, None):
            overrides = _engine_swap(config, engine, swap) + list(overrides)
        cfg = load_config(config, overrides, resolved=resolved)
        check_dataset(cfg.dataset.path, cfg.dataset.limit)
    except (ConfigError, DatasetError) as exc:
        _fail(str(exc))
    return cfg


def _checked(cfg: RunConfig) -> str:
    """``matrixhpc check``'s findings end the command (exit 2, one line per problem);
    else its one-line summary."""
    from matrixhpc.check import check_config

    report = check_config(cfg)
    if report.problems:
        _fail(str(ConfigError(report.problems)))
    return report.summary


def _engine_swap(config: Path, engine: str | None, swap: EngineSwap) -> list[str]:
    """``--engine``'s overrides; a missing or stray ``--url``/``--model`` is an error."""
    services = load_config(config).services if engine is not None else {}
    try:
        return engine_overrides(services, engine, *swap)
    except ValueError as exc:
        _fail(str(exc))


def _launcher_of(run: Mapping[str, object]) -> Launcher:
    """The backend that started the run (run.json's ``launcher``), or a clear error."""
    from matrixhpc.launch.backends import UnknownLauncher, launcher_of

    try:
        return launcher_of(run)
    except UnknownLauncher as exc:
        _fail(str(exc))


def _event_loop_policy() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


@click.group()
@click.version_option(package_name="matrixhpc")
def main() -> None:
    """Peer-to-peer multi-agent synthetic data generation on Slurm clusters."""


@main.command(context_settings={"ignore_unknown_options": False})
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--local", "launcher", flag_value="local", help="Run on this machine.")
@click.option("--slurm", "launcher", flag_value="slurm", help="Run through Slurm.")
@_engine_options
@click.option("--run-dir", type=click.Path(path_type=Path), help="Default runs/<name>-<time>.")
@click.option("--detach", is_flag=True, help="Slurm: submit and return (follow with status).")
def run(
    config: Path,
    overrides: tuple[str, ...],
    launcher: str | None,
    engine: str | None,
    url: str | None,
    model: str | None,
    run_dir: Path | None,
    detach: bool,
) -> None:
    """Run the workflow in CONFIG; KEY=VALUE overrides any config key by dotted path.

    Through Slurm when `sbatch` is on PATH (--slurm), else on this machine (--local).
    """
    from matrixhpc.launch.backends import default_kind, launcher_for

    cfg = _load(config, list(overrides), engine, (url, model))
    _checked(cfg)
    run_dir = (run_dir or default_run_dir(cfg)).absolute()
    if (run_dir / "run.json").exists():
        _fail(f"{run_dir} already holds a run (matrixhpc resume {run_dir} continues it)")
    sys.exit(launcher_for(launcher or default_kind()).submit(cfg, run_dir, detach=detach))


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
def check(config: Path, overrides: tuple[str, ...]) -> None:
    """Check CONFIG without running anything: its python code imports, its templates
    render on the first rows of the dataset, its conditions name only what can exist,
    its routing reaches every role and can end. Exit 2 with one line per problem.

    `run` and `sbatch` run the same checks before they start anything.
    """
    cfg = _load(config, list(overrides), None)
    click.echo(f"{config}: {_checked(cfg)}")


@main.command("sbatch")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--run-dir", type=click.Path(path_type=Path), help="Default OUT_DIR/run.")
@_engine_options
def sbatch_export(
    config: Path,
    out_dir: Path,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    engine: str | None,
    url: str | None,
    model: str | None,
) -> None:
    """Write plain sbatch scripts for CONFIG into OUT_DIR (submit with OUT_DIR/submit.sh)."""
    from matrixhpc.launch.runinfo import record_run
    from matrixhpc.launch.sbatch import export

    cfg = _load(config, list(overrides), engine, (url, model))
    _checked(cfg)
    run_dir = (run_dir or out_dir / "run").absolute()
    if (run_dir / "run.json").exists():
        _fail(f"{run_dir} already holds a run")
    rd = RunDir(run_dir)
    rd.create(cfg)
    (rd.root / "slurm").mkdir(exist_ok=True)
    record_run(rd, cfg, "slurm", state="exported")
    for path in export(cfg, rd.root, out_dir):
        click.echo(f"wrote {path}")
    click.echo(f"submit with: bash {out_dir}/submit.sh   follow with: matrixhpc status {run_dir}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--watch", type=float, default=0, help="Refresh every N seconds.")
def status(run_dir: Path, as_json: bool, watch: float) -> None:
    """Progress of a run, live or finished."""
    from matrixhpc.status import StatusReader, render

    reader = StatusReader(run_dir)  # --watch: later looks read only what changed
    while True:
        st = reader.read()
        if as_json:
            payload = {
                "run": st.run,
                "totals": st.totals,
                "workers": st.workers,
                "replicas": st.replicas,
                "eta": st.eta(),
                "tasks_per_s_mean": st.mean_task_rate(),
            }
            click.echo(json.dumps(payload, indent=2, default=str))
        else:
            click.echo(render(st))
            _echo_jobs(run_dir, st.run)
        if not watch:
            return
        time.sleep(watch)
        click.clear()


def _echo_jobs(run_dir: Path, run: Mapping[str, object]) -> None:
    """The run's scheduler jobs under the progress (none for a local run)."""
    rows = _launcher_of(run).job_states(RunDir(run_dir))
    if rows:
        click.echo("")
        click.echo(f"{'slurm job':16} {'id':14} state")
    for what, job_id, state in rows:
        click.echo(f"{what:16} {job_id:14} {state}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--timeout", default=20.0, help="Seconds before SIGKILL.")
def stop(run_dir: Path, timeout: float) -> None:
    """Stop every process or Slurm job the run started (the run stays resumable)."""
    from matrixhpc.files import read_json

    rd = RunDir(run_dir)
    stopped = _launcher_of(read_json(rd.run_info) or {}).stop(rd, timeout)
    for note in stopped.notes:
        click.echo(note, err=True)
    click.echo(f"{stopped.what} of {run_dir}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option(
    "--force",
    is_flag=True,
    help="Resume even if the input or config changed, or the run was launched on another host.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Run the tasks recorded failed again (their records move to output/_retired-*.jsonl).",
)
def resume(run_dir: Path, overrides: tuple[str, ...], force: bool, retry_failed: bool) -> None:
    """Restart whatever is not running and finish the run in RUN_DIR.

    Finished tasks are kept (never rewritten); tasks in flight continue from their
    last journaled step. KEY=VALUE overrides change the config (needs --force).
    With --retry-failed (also after the run finished), every task recorded failed
    runs again and each id still ends with exactly one final record.
    """
    from matrixhpc.files import read_json
    from matrixhpc.launch import resume_checks as checks
    from matrixhpc.launch.runinfo import adopt_config

    rd = RunDir(run_dir)
    run = read_json(rd.run_info) or {}
    if not run:
        _fail(f"{run_dir} is not a run directory (no run.json)")
    if run.get("state") == "finished" and not retry_failed:
        click.echo(f"{run_dir}: the run has finished; nothing to resume")
        return
    launcher = _launcher_of(run)
    _refuse(checks.launcher_problem(run, run_dir, force=force))
    cfg = _load(rd.config, list(overrides), None, resolved=True)
    now = _fingerprints(cfg)
    changed = checks.changes(run, now, cfg.dataset.path)
    _refuse(checks.change_problem(changed, force=force))
    if retry_failed:  # after the checks: a refused resume leaves the records as they were
        _retire_failed(rd, cfg.workers.count)
    if changed:
        adopt_config(rd, cfg, now)
    sys.exit(launcher.resume(rd, cfg))


def _refuse(problem: str | None) -> None:
    """A check's problem (``launch.resume_checks``) ends the command before anything starts."""
    if problem is not None:
        _fail(problem)


def _fingerprints(cfg: RunConfig) -> Fingerprints:
    """The config's and the input's fingerprints now; an input file that cannot be read
    (gone or unreadable since the check of the dataset) is an error naming it."""
    from matrixhpc.launch.runinfo import Fingerprints

    try:
        return Fingerprints.of(cfg)
    except DatasetError as exc:
        _fail(str(exc))


def _retire_failed(rd: RunDir, workers: int) -> None:
    """Move every failed record out of the shards, so that resume admits those tasks again."""
    from matrixhpc.data.retire import RetireError, retire_failed
    from matrixhpc.launch.completion import worker_name

    try:
        count = sum(len(retire_failed(rd.output, worker_name(i))) for i in range(workers))
    except (RetireError, OSError) as exc:
        _fail(f"cannot retire the failed records: {exc}")
    click.echo(f"retrying {count} failed task(s); their old records: {rd.output}/_retired-*.jsonl")


@main.command()
@click.option("--run-dir", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--index", required=True, type=int, help="This worker's index (array task id).")
def worker(run_dir: Path, index: int) -> None:
    """Run one worker of a run (started by the launchers)."""
    from matrixhpc.build import run_worker
    from matrixhpc.lifecycle import run_until_signal

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _event_loop_policy()
    completed = asyncio.run(run_until_signal(run_worker(run_dir, index)))
    # 0: the whole run is done; 75 (EX_TEMPFAIL): stopped, state saved, resume continues
    sys.exit(0 if completed else EXIT_RESUMABLE)


from matrixhpc.cli_serve import serve  # noqa: E402

main.add_command(serve)
