"""What the baseline processes share with the runtime: building roles, running one step.

``Stepper`` is built from the run directory exactly like ``matrixhpc worker`` builds its
worker (``matrixhpc.build``: the same agents, router and client policies; the same
``LLMClient`` over the same registry), makes the runtime's tasks
(:mod:`matrixhpc.runtime.admission`) and runs a step with the runtime's own code
(:mod:`matrixhpc.runtime.stepping`). Routing is separate (:meth:`route`) because the
centralised dispatcher runs it in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from matrixhpc.agents.base import AgentContext
from matrixhpc.build import build_agents, build_router, client_policies
from matrixhpc.config import RunConfig
from matrixhpc.files import atomic_write_json
from matrixhpc.llm.client import LLMClient
from matrixhpc.llm.replicas import RegistryReplicaSource
from matrixhpc.registry import Registry
from matrixhpc.routing import Router
from matrixhpc.rundir import RunDir
from matrixhpc.runtime.admission import slice_items
from matrixhpc.runtime.stats import WorkerStats, base_status
from matrixhpc.runtime.stepping import advance, run_step
from matrixhpc.task import Task


def event_loop_policy() -> None:
    """uvloop when installed, as ``matrixhpc worker`` does."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def make_tasks(cfg: RunConfig, name: str, shard: tuple[int, int] = (0, 1)) -> Iterator[Task]:
    """The tasks of a dataset slice, with the runtime's ids (``r<row>-t<trial>``), seeds and
    initial state."""
    items = slice_items(
        cfg.dataset.path,
        limit=cfg.dataset.limit,
        shard=shard,
        required=list(cfg.dataset.required),
        trials=cfg.dataset.trials,
        origin=name,
        run_seed=cfg.seed,
    )
    for item in items:
        if isinstance(item, Task):
            item.start_from(cfg.state)
            yield item


class Stepper:
    """One process's roles, router and LLM client, built from the run directory."""

    def __init__(self, name: str, run_dir: Path) -> None:
        rd = RunDir(run_dir)
        self.name = name
        self.run_dir = run_dir
        self.cfg: RunConfig = rd.load()
        self.agents = build_agents(self.cfg, list(self.cfg.roles))
        self.router: Router = build_router(self.cfg.routing)
        self.registry = Registry(rd.registry, scan_interval=1.0)
        self.stats = WorkerStats()
        self.client: LLMClient | None = None
        self.ctx: AgentContext | None = None
        self._start = (time.process_time(), _rss())

    def connect(self) -> None:
        """The process's one LLM client (inside the running loop)."""
        source = RegistryReplicaSource(self.registry)
        self.client = LLMClient(source, client_policies(self.cfg))
        self.ctx = AgentContext(llm=self.client, worker=self.name)

    def mark_start(self) -> None:
        """CPU and memory once set up, before the first task: the start of the measurement."""
        self.stats.started = time.time()
        self._start = (time.process_time(), _rss())

    async def step(self, task: Task) -> None:
        """Run the agent of ``task.next`` once and append its turn (no routing)."""
        assert self.ctx is not None, "connect() first"
        await run_step(self.agents[task.next], task, self.ctx, self.stats, self.name)

    def route(self, task: Task) -> None:
        """Pick the next role; a finished task gets its status (as the runtime does)."""
        route(self.router, task)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()

    def write_status(self, kind: str, **extra: Any) -> None:
        status = base_status(self.name, kind)
        status.update(
            self.stats.counters(),
            kind=kind,
            cpu_s_start=self._start[0],
            rss_mb_start=self._start[1],
            updated=time.time(),
            **extra,
        )
        with contextlib.suppress(OSError):
            atomic_write_json(RunDir(self.run_dir).status / f"{self.name}.json", status)


def route(router: Router, task: Task) -> None:
    advance(router, task)


def _rss() -> float:
    from matrixhpc.runtime.stats import resident_mb

    return resident_mb()
