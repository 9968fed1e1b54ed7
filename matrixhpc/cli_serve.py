"""``matrixhpc serve ENGINE``: one LLM replica, standalone or as part of a run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from matrixhpc.llm.serve import ReplicaSpec, run_until_signal, serve_simulated
from matrixhpc.rundir import RunDir


def _spec(run_dir: Path | None, service: str, replica: int, host: str, port: int,
          model: str | None) -> tuple[ReplicaSpec, dict[str, object]]:  # fmt: skip
    """From a run directory, the service's config decides; standalone, the flags do."""
    if run_dir is None:
        spec = ReplicaSpec(service, f"r{replica}", model or "simulated", host, port)
        return spec, {}
    rd = RunDir(run_dir)
    svc = rd.load().services[service]
    spec = ReplicaSpec(
        service=service,
        replica=f"r{replica}",
        model=model or svc.model or service,
        host=host,
        port=port,
        api_key_file=rd.service_key(service),
        max_concurrency=svc.max_concurrency,
        registry_root=rd.registry,
    )
    return spec, svc.model_dump()


def _common(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed([
        click.option("--run-dir", type=click.Path(exists=True, path_type=Path)),
        click.option("--service", default="llm"),
        click.option("--replica", default=0, type=int),
        click.option("--host", default="127.0.0.1"),
        click.option("--port", default=0, type=int, help="0 picks a free port."),
        click.option("--model", default=None),
    ]):  # fmt: skip
        fn = option(fn)
    return fn


@click.group()
def serve() -> None:
    """Serve one LLM replica (registers it in the run's registry once healthy)."""


@serve.command()
@_common
@click.option("--profile", default=None, help="Latency profile (default h100-llama3.1-8b).")
@click.option("--time-scale", type=float, default=None, help="0.01 runs 100x faster.")
def simulated(run_dir: Path | None, service: str, replica: int, host: str, port: int,
              model: str | None, profile: str | None, time_scale: float | None) -> None:  # fmt: skip
    """The simulated continuous-batching engine (dry runs, benchmarks)."""
    spec, svc = _spec(run_dir, service, replica, host, port, model)
    sim = svc.get("simulated") or {}
    assert isinstance(sim, dict)
    profile = profile or sim.get("profile", "h100-llama3.1-8b")
    scale = time_scale if time_scale is not None else float(sim.get("time_scale", 1.0))
    asyncio.run(run_until_signal(serve_simulated(spec, str(profile), scale)))
