"""Serving one LLM replica: start it, register it once healthy, heartbeat, deregister.

The registry entry ``registry/llm/<service>/<replica>.json`` is written only when
the server answers, so clients never see a replica that cannot serve; it is
removed on exit, and its heartbeat stops if the process dies, so clients drop
it after the TTL even when nobody cleans up.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from matrixhpc.llm.engines.commands import BUILDERS, EngineLaunch
from matrixhpc.llm.engines.listen import is_wildcard, url_host
from matrixhpc.llm.engines.process import EngineProcess, ServerFailed, free_port
from matrixhpc.registry import Registry

T = TypeVar("T")


@dataclass(frozen=True)
class ReplicaSpec:
    service: str
    replica: str
    model: str  # the name clients send; engines serve under it
    host: str = "127.0.0.1"
    port: int = 0
    api_key_file: Path | None = None
    max_concurrency: int | None = None
    registry_root: Path | None = None
    log_dir: Path | None = None

    @property
    def api_key(self) -> str | None:
        return self.api_key_file.read_text().strip() if self.api_key_file else None

    def entry(self, port: int, engine: str, **extra: Any) -> dict[str, Any]:
        host = socket.getfqdn() if is_wildcard(self.host) else url_host(self.host)
        return {
            "url": f"http://{host}:{port}/v1",
            "model": self.model,
            "engine": engine,
            "api_key_file": str(self.api_key_file) if self.api_key_file else None,
            "max_concurrency": self.max_concurrency,
            "state": "ready",
            **extra,
        }


async def registered(
    spec: ReplicaSpec, entry: dict[str, Any], until: Callable[[], Awaitable[T]]
) -> T:
    """Keep the replica registered (heartbeats) while ``until()`` runs; deregister after."""
    if spec.registry_root is None:
        return await until()
    registry = Registry(spec.registry_root)
    kind = f"llm/{spec.service}"
    registry.register(kind, spec.replica, entry)
    beat = asyncio.create_task(registry.heartbeat(kind, spec.replica, lambda: entry))
    try:
        return await until()
    finally:
        beat.cancel()
        registry.deregister(kind, spec.replica)


Waiter = Callable[[], Awaitable[None]]


async def _forever() -> None:
    await asyncio.Event().wait()


async def _first(exits: Callable[[], Awaitable[int]], finished: Waiter | None) -> int:
    """The engine's exit code, or 0 once ``finished`` says the run is over."""
    if finished is None:
        return await exits()
    engine = asyncio.ensure_future(exits())
    done_waiter = asyncio.ensure_future(finished())
    await asyncio.wait({engine, done_waiter}, return_when=asyncio.FIRST_COMPLETED)
    if engine.done():
        done_waiter.cancel()
        return engine.result()
    engine.cancel()
    return 0


async def serve_simulated(
    spec: ReplicaSpec,
    profile_name: str,
    time_scale: float,
    finished: Waiter | None = None,
    script: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """The simulated engine; ``script`` (``services.<name>.simulated.script``) answers the
    roles it names. It reads request metadata (the asking role), so its entry says so."""
    from matrixhpc.llm.engines.simulated import PROFILES, Script, create_app, start_server

    profile = PROFILES[profile_name]
    app = create_app(
        profile,
        time_scale=time_scale,
        model=spec.model,
        api_key=spec.api_key,
        script=Script.from_spec(script),
    )
    runner, port = await start_server(app, spec.host, spec.port)
    entry = spec.entry(
        port, "simulated", profile=profile_name, time_scale=time_scale, request_metadata=True
    )
    print(f"simulated engine {spec.service}/{spec.replica} ready on {entry['url']}", flush=True)
    try:
        await registered(spec, entry, finished or _forever)
    finally:
        await runner.cleanup()


async def serve_engine(
    spec: ReplicaSpec,
    engine: str,
    model_path: str | None,
    args: dict[str, Any],
    startup_timeout: float,
    python: str | None = None,
    env: dict[str, str] | None = None,
    finished: Waiter | None = None,
) -> int:
    """Run a real engine server as a child; returns its exit code (non-zero: it died)."""
    host = "127.0.0.1" if is_wildcard(spec.host) else url_host(spec.host)
    port = spec.port or free_port(spec.host)
    launch = EngineLaunch(model_path, spec.model, spec.host, port, spec.api_key, args, python)
    command = BUILDERS[engine](launch)
    log_dir = spec.log_dir or Path(tempfile.gettempdir())  # standalone: not the cwd
    log = log_dir / f"{spec.service}-{spec.replica}.{engine}.log"
    url = f"http://{host}:{port}/v1/models"
    proc = EngineProcess(command.argv, log, url, spec.api_key, {**(env or {}), **command.env})
    print(f"starting {engine}: {' '.join(command.argv)}", flush=True)
    proc.start()
    try:
        await proc.wait_healthy(startup_timeout)
        entry = spec.entry(port, engine)
        print(f"{engine} {spec.service}/{spec.replica} ready on {entry['url']}", flush=True)
        code = await registered(spec, entry, lambda: _first(proc.wait_exit, finished))
        if code == 0:
            print("the run has finished: stopping the engine", flush=True)
            return 0
        print(f"{engine} server exited with code {code}", flush=True)
        return code
    except ServerFailed as exc:
        print(str(exc), flush=True)
        return 1
    finally:
        proc.stop()


async def serve_external(
    spec: ReplicaSpec,
    url: str,
    model: str | None,
    startup_timeout: float,
    finished: Waiter | None = None,
) -> int:
    """Register an OpenAI-compatible endpoint run by someone else (a hosted API, a shared
    vLLM); checked once like our own servers, then kept registered until stopped. With no
    ``model``, requests name the first model the endpoint lists (``default`` if none)."""
    from matrixhpc.llm.engines.process import check_external

    base = url.rstrip("/")
    try:
        listed = await check_external(base, spec.api_key, startup_timeout)
    except ServerFailed as exc:
        print(str(exc), flush=True)
        return 1
    model = model or (listed[0] if listed else "default")
    entry = {**spec.entry(0, "external"), "url": base, "model": model}
    print(
        f"external endpoint {spec.service}/{spec.replica} registered: {base} ({model})", flush=True
    )
    await registered(spec, entry, finished or _forever)
    return 0
