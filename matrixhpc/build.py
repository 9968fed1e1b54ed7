"""Turn a validated config into live objects: agents and the router.

Kept apart from the config schema (which must load without importing user code)
and from the worker (which should not know how roles are declared).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import replace
from pathlib import Path

from matrixhpc.agents.base import Agent
from matrixhpc.agents.llm import LLMAgent
from matrixhpc.agents.python import PythonAgent
from matrixhpc.agents.sandbox import SandboxAgent
from matrixhpc.config import RoleConfig, RoutingConfig, RunConfig
from matrixhpc.data.manifest import write_manifest
from matrixhpc.imports import import_object, use_python_path
from matrixhpc.llm.client import LLMClient
from matrixhpc.llm.replicas import RegistryReplicaSource
from matrixhpc.llm.types import ClientPolicy
from matrixhpc.registry import Registry
from matrixhpc.routing import FunctionRouter, GraphRouter, Router, SequentialRouter, graph_edges
from matrixhpc.rundir import RunDir
from matrixhpc.runtime.assemble import assemble_worker
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.sandbox.factory import make_sandboxes, slot_uid_base
from matrixhpc.sandbox.limits import uid_per_slot
from matrixhpc.sandbox.service import Sandboxes
from matrixhpc.sandbox.spec import SandboxSpec
from matrixhpc.sandbox.types import Limits, SandboxError

log = logging.getLogger(__name__)


def build_agent(name: str, role: RoleConfig, cfg: RunConfig) -> Agent:
    if role.kind == "llm":
        assert role.service is not None
        return LLMAgent(
            name,
            service=role.service,
            system=role.system,
            prompt=role.prompt,
            dialogue=role.dialogue,
            params=role.params,
            sticky=cfg.services[role.service].sticky,
            options=role.options,
        )
    if role.kind == "python":
        assert role.function is not None
        return PythonAgent(name, import_object(role.function), role.options)
    if role.kind == "sandbox":
        assert role.sandbox is not None
        return SandboxAgent(
            name,
            sandbox=role.sandbox,
            command=role.command,
            code_from=role.code_from,
            stdin=role.stdin,
            fail_on_limit=role.fail_on_limit,
            options=role.options,
        )
    assert role.class_ is not None
    cls = import_object(role.class_)
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        raise TypeError(f"roles.{name}.class: {role.class_} is not an Agent subclass")
    agent: Agent = cls(name, role.options)
    if role.sandbox is not None:  # the sandbox its TaskSandbox.open should use
        agent.resources = replace(agent.resources, sandbox=role.sandbox)
    return agent


def build_agents(cfg: RunConfig, names: list[str]) -> dict[str, Agent]:
    return {name: build_agent(name, cfg.roles[name], cfg) for name in names}


def build_router(routing: RoutingConfig) -> Router:
    steps, on_error = routing.max_steps, routing.stop_on_error
    if routing.kind == "sequential":
        return SequentialRouter(
            routing.order,
            repeat=routing.repeat,
            stop_when=routing.stop_when,
            max_steps=steps,
            stop_on_error=on_error,
        )
    if routing.kind == "graph":
        assert routing.start is not None
        raw = {
            k: v if isinstance(v, str) else [e.model_dump() for e in v]
            for k, v in routing.edges.items()
        }
        return GraphRouter(
            routing.start,
            graph_edges(raw),
            stop_when=routing.stop_when,
            max_steps=steps,
            stop_on_error=on_error,
        )
    assert routing.function is not None
    return FunctionRouter(import_object(routing.function), max_steps=steps, stop_on_error=on_error)


def client_policies(cfg: RunConfig) -> dict[str, ClientPolicy]:
    return {
        name: ClientPolicy(
            max_concurrency=svc.max_concurrency,
            timeout=svc.timeout,
            max_retries=svc.max_retries,
            sticky=svc.sticky,
            queue_metrics=svc.queue_metrics,
            wait_for_replica=svc.replica_wait,
        )
        for name, svc in cfg.services.items()
    }


def worker_spec(cfg: RunConfig, run_dir: Path, index: int) -> WorkerSpec:
    group, _ = cfg.group_of(index)
    return WorkerSpec(
        name=f"w{index:03d}",
        index=index,
        count=cfg.workers.count,
        group=group,
        run_dir=run_dir,
        dataset_path=cfg.dataset.path,
        dataset_limit=cfg.dataset.limit,
        trials=cfg.dataset.trials,
        required=tuple(cfg.dataset.required),
        seed=cfg.seed,
        window=cfg.workers.window,
        max_active=cfg.workers.max_active,
        host=cfg.workers.host or _default_host(cfg),
        shard_records=cfg.output.shard_records,
        flush_interval=max(cfg.output.flush_interval, cfg.workers.count / 64),
        load_interval=load_interval(cfg.workers.count),
        durability=cfg.workers.durability,
        commit_interval=cfg.workers.commit_interval,
        segment_bytes=cfg.workers.journal_segment_mb * 2**20,
        lease=cfg.workers.lease,
        max_attempts=cfg.workers.max_attempts,
        ack_timeout=cfg.workers.ack_timeout,
        encrypt=cfg.workers.encrypt,
        initial_state=cfg.state,
        sandboxed=bool(cfg.sandboxes),
    )


def sandbox_specs(cfg: RunConfig, run_dir: Path, index: int) -> list[SandboxSpec]:
    """The specs of worker ``index``'s pools (``sandboxes:`` in the config)."""
    run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    specs = []
    for ordinal, (name, box) in enumerate(cfg.sandboxes.items()):
        own_uids = box.backend == "bubblewrap" and uid_per_slot()
        limits = box.limits
        specs.append(
            SandboxSpec(
                name=name,
                backend=box.backend,
                image=box.image,
                pool=box.pool,
                network=box.network,
                limits=Limits(
                    limits.wall_s, limits.grace_s, limits.memory, limits.pids, limits.output_bytes
                ),
                start_timeout=box.start_timeout,
                idle_s=box.idle_s,
                keep_s=box.keep_s,
                acquire_timeout=box.acquire_timeout,
                scratch=Path(box.scratch or os.environ.get("TMPDIR") or tempfile.gettempdir()),
                env=dict(box.env),
                uid_base=slot_uid_base(index, ordinal, len(cfg.sandboxes)) if own_uids else None,
                run_id=run_id,
                owner=f"w{index:03d}",
            )
        )
    return specs


def build_sandboxes(cfg: RunConfig, run_dir: Path, index: int, roles: list[str]) -> Sandboxes:
    """The pools of the sandboxes that worker ``index``'s roles use (none: no pools)."""
    used = {cfg.roles[role].sandbox for role in roles}
    apptainer = next((b.apptainer for b in cfg.sandboxes.values() if b.apptainer), None)
    specs = [s for s in sandbox_specs(cfg, run_dir, index) if s.name in used]
    return make_sandboxes(specs, apptainer)


def scan_interval(workers: int) -> float:
    """Seconds between registry scans: every worker scans every worker's file, so the
    metadata load on a shared filesystem grows with workers squared unless the
    interval grows with the run (1 s up to 32 workers, 8 s at 256)."""
    return max(1.0, workers / 32)


def worker_ttl(workers: int) -> float:
    """Seconds a worker's registry entry lives without a heartbeat. Every reader checks
    every entry about once per TTL (one ``stat``), N**2 / TTL in all: 30 s up to ~120
    workers, then growing so that 1,000 cost ~600 ops/s (35 min). A worker that is
    restarted (requeue) rewrites its entry, which peers see at their next scan; only a
    worker killed for good is noticed this late (its origin's lease re-issues its tasks)."""
    return max(30.0, workers * workers / 480)


def full_reread(workers: int) -> float:
    """Seconds between scans that re-read every registry entry (a safety net for reused
    inode numbers, see ``files.JsonDir``): N**2 reads each time, so every 5 s for a few
    workers and 2,000 s (500 reads/s in all) at 1,000."""
    return max(5.0, workers * workers / 500)


def load_interval(workers: int) -> float:
    """Seconds between updates of the load a worker advertises: each update is read by
    every peer, so N**2 / interval reads in all: every 5 s up to ~35 workers, then
    rarer (at most ~250 updates read per second); the per-peer ``sent`` counts balance
    between updates."""
    return max(5.0, workers * workers / 250)


def _default_host(cfg: RunConfig) -> str:
    """Inside a Slurm job peers are on other nodes: listen as the servers do."""
    return cfg.slurm.bind_host if "SLURM_JOB_ID" in os.environ else "127.0.0.1"


async def run_worker(run_dir: Path, index: int) -> bool:
    """The body of ``matrixhpc worker``: wire config, agents, router, client and run."""
    rd = RunDir(run_dir)
    cfg = rd.load()
    use_python_path(cfg.python_path)  # user code comes from the same place on every launcher
    _, roles = cfg.group_of(index)
    registry = Registry(
        rd.registry,
        ttl=worker_ttl(cfg.workers.count),
        scan_interval=scan_interval(cfg.workers.count),
        full_every=full_reread(cfg.workers.count),
    )
    try:  # first: a killed incarnation's sandboxes are stopped before anything runs
        sandboxes = build_sandboxes(cfg, run_dir, index, roles)
        await sandboxes.open()
    except (SandboxError, OSError) as exc:
        log.error("worker not started: sandboxes: %s", exc)
        return False
    client = LLMClient(RegistryReplicaSource(registry), client_policies(cfg))
    worker = assemble_worker(
        worker_spec(cfg, run_dir, index),
        build_agents(cfg, roles),
        build_router(cfg.routing),
        client,
        registry,
        sandboxes if sandboxes.names() else None,
    )
    completed = False
    try:
        completed = await worker.run()
    finally:
        await client.close()
        await sandboxes.close(run_finished=completed)
    if completed and index == 0:  # whoever launched the run may be gone (Slurm, detached)
        try:
            write_manifest(rd.output, rd.run_info, cfg, "finished")
        except OSError as exc:  # a full disk: the records are safe; a resume writes it
            log.error("cannot write the manifest: %s", exc)
    return completed
