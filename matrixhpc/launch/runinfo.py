"""``RUN_DIR/run.json``: what was launched, how, with which input; shared by launchers."""

from __future__ import annotations

import time
from typing import Any

from matrixhpc.config import RunConfig
from matrixhpc.data.fingerprint import input_fingerprint
from matrixhpc.data.readers import count_rows
from matrixhpc.rundir import RunDir
from matrixhpc.runtime.registry import atomic_write_json, read_json


def record_run(rd: RunDir, cfg: RunConfig, launcher: str, **fields: Any) -> dict[str, Any]:
    """Create run.json on first call (fingerprints, total tasks), update it after."""
    path = rd.root / "run.json"
    run = read_json(path)
    if run is None:
        total = count_rows(cfg.dataset.path, cfg.dataset.limit) * cfg.dataset.trials
        run = {
            "name": cfg.name,
            "launcher": launcher,
            "started": time.time(),
            "config_hash": cfg.fingerprint(),
            "input_fingerprint": input_fingerprint(cfg.dataset.path),
            "total_tasks": total,
        }
    run.update(fields)
    atomic_write_json(path, run)
    return run
