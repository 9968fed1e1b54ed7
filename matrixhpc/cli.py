"""The ``matrixhpc`` command: thin click commands that call the layers below."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import NoReturn

import click

from matrixhpc.config import ConfigError, RunConfig, load_config
from matrixhpc.data.readers import DatasetError, check_dataset
from matrixhpc.rundir import RunDir, default_run_dir

EXIT_RESUMABLE = 75


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"matrixhpc: {message}", err=True)
    sys.exit(code)


def _load(config: Path, overrides: list[str], engine: str | None) -> RunConfig:
    try:
        if engine is not None:
            services = load_config(config).services
            overrides = [f"services.{s}.engine={engine}" for s in services] + list(overrides)
        cfg = load_config(config, overrides)
        check_dataset(cfg.dataset.path, cfg.dataset.limit)
    except (ConfigError, DatasetError) as exc:
        _fail(str(exc))
    return cfg


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
@click.option(
    "--engine",
    type=click.Choice(["simulated", "llamacpp", "vllm"]),
    help="Swap every LLM service for this engine (simulated = dry run).",
)
@click.option("--run-dir", type=click.Path(path_type=Path), help="Default runs/<name>-<time>.")
@click.option("--detach", is_flag=True, help="Slurm: submit and return (follow with status).")
def run(
    config: Path,
    overrides: tuple[str, ...],
    launcher: str | None,
    engine: str | None,
    run_dir: Path | None,
    detach: bool,
) -> None:
    """Run the workflow in CONFIG; KEY=VALUE overrides any config key by dotted path.

    Through Slurm when `sbatch` is on PATH (--slurm), else on this machine (--local).
    """
    cfg = _load(config, list(overrides), engine)
    launcher = launcher or ("slurm" if shutil.which("sbatch") else "local")
    run_dir = (run_dir or default_run_dir(cfg)).absolute()
    if (run_dir / "run.json").exists():
        _fail(f"{run_dir} already holds a run (matrixhpc resume {run_dir} continues it)")
    if launcher == "slurm":
        from matrixhpc.launch.slurm_run import launch_slurm

        sys.exit(launch_slurm(cfg, run_dir, detach=detach))
    from matrixhpc.launch.local import launch_local

    sys.exit(launch_local(cfg, run_dir))


@main.command("sbatch")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--run-dir", type=click.Path(path_type=Path), help="Default OUT_DIR/run.")
@click.option("--engine", type=click.Choice(["simulated", "llamacpp", "vllm"]))
def sbatch_export(
    config: Path,
    out_dir: Path,
    overrides: tuple[str, ...],
    run_dir: Path | None,
    engine: str | None,
) -> None:
    """Write plain sbatch scripts for CONFIG into OUT_DIR (submit with OUT_DIR/submit.sh)."""
    from matrixhpc.launch.runinfo import record_run
    from matrixhpc.launch.sbatch import export

    cfg = _load(config, list(overrides), engine)
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
    from matrixhpc.status import read_status, render

    while True:
        st = read_status(run_dir)
        if as_json:
            payload = {
                "run": st.run,
                "totals": st.totals,
                "workers": st.workers,
                "replicas": st.replicas,
                "eta": st.eta,
            }
            click.echo(json.dumps(payload, indent=2, default=str))
        else:
            click.echo(render(st))
            if st.run.get("launcher") == "slurm":
                _echo_jobs(run_dir)
        if not watch:
            return
        time.sleep(watch)
        click.clear()


def _echo_jobs(run_dir: Path) -> None:
    from matrixhpc.launch.slurm import SlurmLauncher, job_table

    rd = RunDir(run_dir)
    rows = job_table(SlurmLauncher(rd, rd.load()))
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
    from matrixhpc.launch.process import read_recorded, stop_recorded

    rd = RunDir(run_dir)
    run = read_json(rd.run_info) or {}
    if run.get("launcher") == "slurm":
        from matrixhpc.launch.slurm import SlurmLauncher

        launcher = SlurmLauncher(rd, rd.load())
        launcher.cancel()
        click.echo(f"cancelled {len(launcher.job_ids())} job(s) of {run_dir}")
        return
    # only processes still ours: same host, same start time (a PID may have been reused)
    count, notes = stop_recorded(read_recorded(read_json(rd.pids) or {}), timeout)
    for note in notes:
        click.echo(note, err=True)
    click.echo(f"stopped {count} process(es) of {run_dir}")


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
    from matrixhpc.data.fingerprint import input_fingerprint
    from matrixhpc.files import read_json
    from matrixhpc.launch.local import resume_local

    rd = RunDir(run_dir)
    run = read_json(rd.run_info) or {}
    if not run:
        _fail(f"{run_dir} is not a run directory (no run.json)")
    if run.get("state") == "finished" and not retry_failed:
        click.echo(f"{run_dir}: the run has finished; nothing to resume")
        return
    _check_not_running(run_dir, run, force)
    cfg = _load(rd.config, list(overrides), None)
    if retry_failed:
        _retire_failed(rd, cfg.workers.count)
    changes = []
    if cfg.fingerprint() != run.get("config_hash"):
        changes.append("the config")
    if input_fingerprint(cfg.dataset.path) != run.get("input_fingerprint"):
        changes.append(f"the input ({cfg.dataset.path})")
    if changes and not force:
        _fail(
            f"refusing to resume: {' and '.join(changes)} changed since the run started; "
            "records written so far came from the old one. Use --force to resume anyway."
        )
    if changes:
        from matrixhpc.config import dump_config
        from matrixhpc.files import atomic_write_json

        dump_config(cfg, rd.config)
        run.update(
            config_hash=cfg.fingerprint(), input_fingerprint=input_fingerprint(cfg.dataset.path)
        )
        atomic_write_json(rd.run_info, run)
    if run.get("launcher") == "slurm":
        from matrixhpc.launch.slurm_run import resume_slurm

        sys.exit(resume_slurm(rd, cfg))
    sys.exit(resume_local(rd, cfg))


def _retire_failed(rd: RunDir, workers: int) -> None:
    """Move every failed record out of the shards, so that resume admits those tasks again."""
    from matrixhpc.data.retire import RetireError, retire_failed
    from matrixhpc.launch.completion import worker_name

    try:
        count = sum(len(retire_failed(rd.output, worker_name(i))) for i in range(workers))
    except (RetireError, OSError) as exc:
        _fail(f"cannot retire the failed records: {exc}")
    click.echo(f"retrying {count} failed task(s); their old records: {rd.output}/_retired-*.jsonl")


def _check_not_running(run_dir: Path, run: dict[str, object], force: bool) -> None:
    """Refuse to resume a run whose launcher still runs: checked by host, PID and start
    time, so a reused PID is not mistaken for it; another host's cannot be checked."""
    import socket

    from matrixhpc.launch.process import Recorded, pid_alive

    pid = run.get("launcher_pid")
    if not isinstance(pid, int) or run.get("launcher") == "slurm":
        return
    host, start = run.get("launcher_host"), run.get("launcher_start")
    if not isinstance(start, int):  # recorded before start times were: the PID is all there is
        if pid_alive(pid):
            _fail(f"{run_dir} is running (launcher pid {pid}); stop it first")
        return
    if Recorded("launcher", pid, str(host) if host else None, start).mismatch() is None:
        _fail(f"{run_dir} is running (launcher pid {pid}); stop it first")
    if host and host != socket.gethostname() and not force:
        _fail(
            f"{run_dir} was launched on host {host} (launcher pid {pid}), which cannot be "
            f"checked from here: resume it on {host}, or use --force if that host is down"
        )


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
