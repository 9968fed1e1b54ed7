"""A worker's state at start: replayed from its journal and its own output shards.

Run once, before anything else moves: the journal says what this worker admitted,
holds and has handed off; the shards say what it has written (the truth for what
is done, even when the journal was lost). A torn shard tail is repaired and reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from matrixhpc.data.writers import ShardRecovery, ShardWriter, recover_shards
from matrixhpc.runtime.clock import Clock
from matrixhpc.runtime.holdings import Holdings
from matrixhpc.runtime.journal import Journal
from matrixhpc.runtime.origin import OriginBook
from matrixhpc.runtime.recovery import Recovered, recover
from matrixhpc.runtime.spec import WorkerSpec

log = logging.getLogger(__name__)


@dataclass
class Restored:
    state: Recovered
    book: OriginBook
    holdings: Holdings
    repaired: list[dict[str, Any]]


def restore(spec: WorkerSpec, journal: Journal, clock: Clock) -> Restored:
    """Replay ``journal`` and the worker's shards (raises JournalError or OSError)."""
    state = recover(journal.replay())
    out_dir = spec.run_dir / "output"
    shards = recover_shards(out_dir, spec.name)
    for repair in shards.repaired:
        log.warning("repaired torn output shard: %s", repair)
    if state.records == 0 and shards.ids:
        _warn_lost(spec, journal, shards)
    writer = ShardWriter(
        out_dir,
        spec.name,
        spec.shard_records,
        shards.shards,
        durable=spec.durability != "off",
    )
    book = OriginBook(writer, journal, spec.window, clock=clock.time)
    book.restore(state.admitted, shards)
    held = {
        task_id: task
        for task_id, task in state.held.items()
        if not (task.origin == spec.name and task_id in book.written)
    }
    return Restored(state, book, Holdings(held, state.seen), shards.repaired)


def _warn_lost(spec: WorkerSpec, journal: Journal, shards: ShardRecovery) -> None:
    log.warning(
        "journal %s is empty but %d records were written: it was lost. Unwritten tasks "
        "are admitted again; tasks held here for other origins come back when their "
        "leases expire (workers.lease = %gs)",
        journal.dir,
        len(shards.ids),
        spec.lease,
    )
