"""``_manifest.json`` and ``_errors.jsonl``: the summary a user (or resume) reads first.

Built from the per-worker shard indexes and error logs, so it is cheap and can be
rebuilt at any time (end of run, ``status``, resume) without reading the data.
Written by whoever sees the run end (the local launcher, the Slurm watcher, worker 0),
all through :func:`write_manifest`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

from matrixhpc.data.layout import ERRORS_DIR, INDEX_DIR, RETIRED_PREFIX, TORN_DIR
from matrixhpc.data.tally import summary
from matrixhpc.files import atomic_write_json, read_json, write_atomically

MANIFEST = "_manifest.json"
ERRORS = "_errors.jsonl"


def merge_errors(out_dir: Path) -> int:
    """Concatenate per-worker error logs into ``_errors.jsonl``; returns the row count."""
    lines: list[str] = []
    for part in sorted((out_dir / ERRORS_DIR).glob("*.jsonl")):
        lines += [ln for ln in part.read_text(encoding="utf-8").splitlines() if ln.strip()]
    write_atomically(out_dir / ERRORS, ["".join(ln + "\n" for ln in lines).encode()])
    return len(lines)


def count_retired(out_dir: Path) -> int:
    """Records moved out of the shards by ``resume --retry-failed`` (see data/retire.py)."""
    total = 0
    for log in out_dir.glob(f"{RETIRED_PREFIX}*.jsonl"):
        with log.open("rb") as fh:
            total += sum(1 for _ in fh)
    return total


def build_manifest(out_dir: Path, *, name: str, config_hash: str, **extra: Any) -> dict[str, Any]:
    shards: list[dict[str, Any]] = []
    for index in sorted((out_dir / INDEX_DIR).glob("*.json")):
        data = read_json(index) or {}
        shards += data.get("shards", [])
    shards.sort(key=lambda s: s["file"])
    manifest = {
        "name": name,
        "config_hash": config_hash,
        "written": time.time(),
        "records": sum(s["records"] for s in shards),
        "ok": sum(s["ok"] for s in shards),
        "failed": sum(s["failed"] for s in shards),
        "row_errors": merge_errors(out_dir),
        **summary(shards),
        "shards": shards,
        "repaired": sorted(p.name for p in (out_dir / TORN_DIR).glob("*")),
        "retired": count_retired(out_dir),
        **extra,
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


class RunIdentity(Protocol):
    """What a manifest names its run by. A :class:`~matrixhpc.config.RunConfig` is one;
    structural, so ``data/`` needs no config (which would pull in the LLM engines)."""

    @property
    def name(self) -> str: ...

    def fingerprint(self) -> str: ...


def write_manifest(out_dir: Path, run_info: Path, run: RunIdentity, state: str) -> dict[str, Any]:
    """The manifest of a run that reached ``state``, with the input fingerprint recorded
    at launch in ``run_info`` (``RUN_DIR/run.json``; absent or unreadable: none)."""
    recorded = read_json(run_info)
    fingerprint = recorded.get("input_fingerprint") if isinstance(recorded, dict) else None
    return build_manifest(
        out_dir,
        name=run.name,
        config_hash=run.fingerprint(),
        input_fingerprint=fingerprint,
        state=state,
    )
