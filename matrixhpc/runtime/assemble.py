"""A worker process's worker: its journal, ZeroMQ sockets and keys, built and handed in.

The worker never builds its own collaborators (so a unit test can give it others:
an in-process transport, a manual clock); this is where a real process's are made.
"""

from __future__ import annotations

from collections.abc import Mapping

import zmq.asyncio

from matrixhpc.agents.base import Agent
from matrixhpc.keys import CurveKeys
from matrixhpc.llm.types import ChatClient
from matrixhpc.registry import Registry
from matrixhpc.routing import Router
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.parts import Collaborators
from matrixhpc.runtime.spec import WorkerSpec
from matrixhpc.runtime.transport import Inbox, Outbox
from matrixhpc.runtime.worker import Worker
from matrixhpc.sandbox.types import SandboxProvider


def journal_for(spec: WorkerSpec) -> Journal:
    """The worker's journal, ``RUN_DIR/journal/<worker>`` (the same after a requeue)."""
    return Journal(
        spec.run_dir / "journal" / spec.name,
        spec.durability,
        commit_interval=spec.commit_interval,
        segment_bytes=spec.segment_bytes,
    )


def assemble_worker(
    spec: WorkerSpec,
    agents: Mapping[str, Agent],
    router: Router,
    llm: ChatClient,
    registry: Registry,
    sandboxes: SandboxProvider | None = None,
) -> Worker:
    """A worker on ZeroMQ (CURVE-encrypted with the run's keys when ``spec.encrypt``);
    its sockets and their context are closed when its run ends."""
    journal = journal_for(spec)
    context = zmq.asyncio.Context()
    keys = CurveKeys.create(spec.run_dir / "secrets" / "curve.key") if spec.encrypt else None
    deps = Collaborators(
        journal=journal,
        inbox=Inbox(context, spec.host, curve=keys),
        outbox=Outbox(context, curve=keys),
        registry=registry,
        llm=llm,
        on_close=context.term,
        sandboxes=sandboxes,
    )
    return Worker(spec, agents, router, deps)
