"""``matrixhpc serve ENGINE``: one LLM replica, standalone or as part of a run."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from matrixhpc.launch.completion import wait_run_finished
from matrixhpc.lifecycle import run_until_signal
from matrixhpc.llm.engines.commands import EngineUnavailable
from matrixhpc.llm.engines.simulated.profiles import DEFAULT_PROFILE, PROFILES
from matrixhpc.llm.serve import ReplicaSpec, serve_engine, serve_external, serve_simulated
from matrixhpc.rundir import RunDir


def _finished(run_dir: Path | None) -> Callable[[], Awaitable[None]] | None:
    """In a run, a server stops by itself once every worker is done."""
    if run_dir is None:
        return None
    workers = RunDir(run_dir).load().workers.count
    return lambda: wait_run_finished(run_dir, workers)


def _spec(
    run_dir: Path | None, service: str, replica: int, host: str, port: int, model: str | None
) -> tuple[ReplicaSpec, dict[str, Any]]:
    """From a run directory, the service's config decides; standalone, the flags do."""
    if run_dir is None:
        spec = ReplicaSpec(service, f"r{replica}", service, host, port)
        return spec, {"model": model}
    rd = RunDir(run_dir)
    svc = rd.load().services[service]
    spec = ReplicaSpec(
        service=service,
        replica=f"r{replica}",
        model=service,
        host=host,
        port=port,
        api_key_file=rd.service_key(service),
        max_concurrency=svc.max_concurrency,
        registry_root=rd.registry,
        log_dir=rd.logs,
    )
    return spec, svc.model_dump()


def _common(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--run-dir", type=click.Path(exists=True, path_type=Path)),
            click.option("--service", default="llm"),
            click.option("--replica", default=0, type=int),
            click.option("--host", default="127.0.0.1"),
            click.option("--port", default=0, type=int, help="0 picks a free port."),
            click.option("--model", default=None),
        ]
    ):
        fn = option(fn)
    return fn


@click.group()
def serve() -> None:
    """Serve one LLM replica (registers it in the run's registry once healthy)."""


@serve.command()
@_common
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default=None,
    help=f"Latency profile (default {DEFAULT_PROFILE}).",
)
@click.option("--time-scale", type=float, default=None, help="0.01 runs 100x faster.")
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="YAML file: replies per role, as services.<name>.simulated.script.",
)
def simulated(
    run_dir: Path | None,
    service: str,
    replica: int,
    host: str,
    port: int,
    model: str | None,
    profile: str | None,
    time_scale: float | None,
    script: Path | None,
) -> None:
    """The simulated continuous-batching engine (dry runs, benchmarks).

    In a run, the service's ``simulated`` section gives the profile, time scale and
    script; the flags override it."""
    spec, svc = _spec(run_dir, service, replica, host, port, model)
    sim = svc.get("simulated") or {}
    assert isinstance(sim, dict)
    profile = profile or sim.get("profile", DEFAULT_PROFILE)
    scale = time_scale if time_scale is not None else float(sim.get("time_scale", 1.0))
    replies = _script_file(script) if script is not None else sim.get("script")
    served = serve_simulated(spec, str(profile), scale, _finished(run_dir), replies)
    asyncio.run(run_until_signal(served))


def _script_file(path: Path) -> dict[str, Any]:
    """``--script FILE``, checked like a config's script: a mistake is a usage error."""
    from matrixhpc.config import ConfigError
    from matrixhpc.config.script_file import load_script

    try:
        return load_script(path)
    except ConfigError as exc:
        raise click.UsageError(f"{path}: {exc}") from None


def _run_engine(
    engine: str,
    spec: ReplicaSpec,
    svc: dict[str, Any],
    extra: tuple[str, ...],
    model: str | None,
    run_dir: Path | None,
) -> None:
    args = dict(svc.get("args") or {})
    args.update(_parse_extra(extra))
    timeout = float(svc.get("startup_timeout") or 600)
    python = svc.get("python")
    try:
        code = asyncio.run(
            run_until_signal_code(
                serve_engine(
                    spec,
                    engine,
                    model or svc.get("model"),
                    args,
                    timeout,
                    python,
                    svc.get("env"),
                    _finished(run_dir),
                )
            )
        )
    except EngineUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)


async def run_until_signal_code(main: Awaitable[int]) -> int:
    """An engine's exit code; 0 when it was stopped by a signal (that is how it ends)."""
    code = await run_until_signal(main)
    return 0 if code is None else code


def _parse_extra(extra: tuple[str, ...]) -> dict[str, Any]:
    """``--max-model-len 4096 --enable-prefix-caching`` -> {"max_model_len": "4096", ...}."""
    out: dict[str, Any] = {}
    items = list(extra)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--"):
            raise click.UsageError(f"unexpected engine argument {flag!r}")
        key = flag[2:].replace("-", "_")
        if "=" in key:
            key, _, value = key.partition("=")
            out[key] = value
        elif items and not items[0].startswith("--"):
            out[key] = items.pop(0)
        else:
            out[key] = True
    return out


_PASS = {"ignore_unknown_options": True, "allow_extra_args": True}


def _engine_command(engine: str, help_text: str) -> click.Command:
    """``serve llamacpp`` / ``serve vllm``: the same options; unknown --flags go to the engine."""

    @click.command(engine, context_settings=_PASS, help=help_text)
    @_common
    @click.argument("engine_args", nargs=-1, type=click.UNPROCESSED)
    def command(
        run_dir: Path | None,
        service: str,
        replica: int,
        host: str,
        port: int,
        model: str | None,
        engine_args: tuple[str, ...],
    ) -> None:
        spec, svc = _spec(run_dir, service, replica, host, port, model)
        _run_engine(engine, spec, svc, engine_args, model, run_dir)

    return command


serve.add_command(
    _engine_command(
        "llamacpp", "llama.cpp's OpenAI server on CPU (default model: the embedded SmolLM2-135M)."
    )
)
serve.add_command(_engine_command("vllm", "vLLM's OpenAI server; any further --flag goes to vLLM."))


@serve.command()
@_common
@click.option("--url", default=None, help="Base URL ending in /v1 (default: the service's url).")
@click.option("--api-key-env", default=None, help="Environment variable holding the API key.")
def external(
    run_dir: Path | None,
    service: str,
    replica: int,
    host: str,
    port: int,
    model: str | None,
    url: str | None,
    api_key_env: str | None,
) -> None:
    """Register an external OpenAI-compatible endpoint as a replica of a service."""
    spec, svc = _spec(run_dir, service, replica, host, port, model)
    url = url or svc.get("url")
    if not url:
        raise click.UsageError("an external service needs --url or services.<name>.url")
    env_name = api_key_env or svc.get("api_key_env")
    spec = _with_external_key(spec, run_dir, str(env_name) if env_name else None)
    served = model or svc.get("model")  # unset: the endpoint's first listed model
    timeout = float(svc.get("startup_timeout") or 60)
    code = asyncio.run(
        run_until_signal_code(serve_external(spec, str(url), served, timeout, _finished(run_dir)))
    )
    sys.exit(code)


def _with_external_key(
    spec: ReplicaSpec, run_dir: Path | None, env_name: str | None
) -> ReplicaSpec:
    """The endpoint's own key (from the environment, never the config) replaces the per-run
    key; it is stored under RUN_DIR/secrets (0600) for workers on other nodes."""
    import dataclasses
    import os

    if not env_name:
        return dataclasses.replace(spec, api_key_file=None)
    key = os.environ.get(env_name)
    if not key:
        raise click.UsageError(f"environment variable {env_name} (the API key) is not set")
    if run_dir is None:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f".matrixhpc-{spec.service}.key"
    else:
        path = RunDir(run_dir).secrets / f"{spec.service}.external.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return dataclasses.replace(spec, api_key_file=path)
