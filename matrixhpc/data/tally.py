"""What a shard's index counts of its records, and what the manifest adds up from them.

Records, ok and failed, and two things a user asks first about a run: why its tasks
failed (the error messages, most frequent first) and how the successful ones ended (a
task cut off by ``routing.max_steps`` is written ``ok`` but flagged ``ended:
"max_steps"``). Counted as records are written (:class:`~matrixhpc.data.writers.
ShardWriter`) and when a shard is read back (:mod:`~matrixhpc.data.shard_recovery`), by
this one function, so the index is the same whichever way it was built; the manifest
then reads indexes only, never the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

MESSAGES_PER_SHARD = 20  # distinct error messages kept per shard; the rest are "other"
MESSAGE_CHARS = 200  # an error is known by its first line, cut to this length
OTHER = "(other errors)"


def new_shard(name: str) -> dict[str, Any]:
    return {"file": name, "records": 0, "ok": 0, "failed": 0}


def error_key(message: object) -> str:
    text = [] if message is None else str(message).strip().splitlines()
    return text[0][:MESSAGE_CHARS] if text else "(no message)"


def count(shard: dict[str, Any], record: dict[str, Any]) -> None:
    """Add one record to a shard's counts."""
    shard["records"] += 1
    ok = record.get("status") == "ok"
    shard["ok" if ok else "failed"] += 1
    if not ok:
        errors: dict[str, int] = shard.setdefault("errors", {})
        key = error_key(record.get("error"))
        if key not in errors and len(errors) >= MESSAGES_PER_SHARD:
            key = OTHER
        errors[key] = errors.get(key, 0) + 1
    ended = record.get("ended")
    if isinstance(ended, str):
        endings: dict[str, int] = shard.setdefault("ended", {})
        endings[ended] = endings.get(ended, 0) + 1


def summary(shards: Iterable[dict[str, Any]], top: int = 10) -> dict[str, Any]:
    """The manifest's ``top_errors`` (why tasks failed: the ``top`` most frequent
    messages, as [message, count]) and ``ended`` (records by how they ended, where
    flagged)."""
    errors: Counter[str] = Counter()
    ended: Counter[str] = Counter()
    for shard in shards:
        errors.update(shard.get("errors") or {})
        ended.update(shard.get("ended") or {})
    return {
        "top_errors": [[message, n] for message, n in errors.most_common(top)],
        "ended": dict(sorted(ended.items())),
    }
