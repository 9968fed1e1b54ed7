"""What a worker is made of: the collaborators it is given, and the parts it builds.

:class:`Collaborators` are made outside the worker (:mod:`assemble` for a real
process; a unit test makes its own: an in-process transport, a manual clock) and
handed in, so that the worker never builds its own journal, sockets or keys.
:class:`Parts` are the worker's own jobs, built once its journal has been replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from matrixhpc.llm.types import ChatClient
from matrixhpc.registry import Registry
from matrixhpc.runtime.admitter import Admitter
from matrixhpc.runtime.clock import Clock, SystemClock
from matrixhpc.runtime.dispatch import Dispatcher
from matrixhpc.runtime.driver import Driver
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.inbound import Inbound
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.leases import Leases
from matrixhpc.runtime.ports import FrameInbox, FrameOutbox
from matrixhpc.sandbox.types import SandboxProvider


def _nothing() -> None:
    return None


@dataclass
class Collaborators:
    journal: Journal  # this worker's checkpointed queue (not opened yet)
    inbox: FrameInbox
    outbox: FrameOutbox
    registry: Registry
    llm: ChatClient
    clock: Clock = field(default_factory=SystemClock)
    # run after the inbox and outbox are closed (e.g. terminate their ZeroMQ context)
    on_close: Callable[[], None] = _nothing
    sandboxes: SandboxProvider | None = None  # the tasks' tool sandboxes on this worker


@dataclass
class Parts:
    holdings: Holdings
    admitter: Admitter
    dispatcher: Dispatcher
    driver: Driver
    inbound: Inbound
    leases: Leases
    repaired: list[dict[str, Any]]  # output shards whose torn tail was cut at start
