"""``_manifest.json`` and ``_errors.jsonl``: the summary a user (or resume) reads first.

Built from the per-worker shard indexes and error logs, so it is cheap and can be
rebuilt at any time (end of run, ``status``, resume) without reading the data.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from matrixhpc.data.layout import ERRORS_DIR, INDEX_DIR, RETIRED_PREFIX, TORN_DIR
from matrixhpc.runtime.registry import atomic_write_json, read_json

MANIFEST = "_manifest.json"
ERRORS = "_errors.jsonl"


def merge_errors(out_dir: Path) -> int:
    """Concatenate per-worker error logs into ``_errors.jsonl``; returns the row count."""
    lines: list[str] = []
    for part in sorted((out_dir / ERRORS_DIR).glob("*.jsonl")):
        lines += [ln for ln in part.read_text(encoding="utf-8").splitlines() if ln.strip()]
    tmp = out_dir / f".{ERRORS}.tmp"
    tmp.write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    tmp.replace(out_dir / ERRORS)
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
        "shards": shards,
        "repaired": sorted(p.name for p in (out_dir / TORN_DIR).glob("*")),
        "retired": count_retired(out_dir),
        **extra,
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest
