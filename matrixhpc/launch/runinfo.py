"""``RUN_DIR/run.json``: what was launched, how, with which input; shared by launchers."""

from __future__ import annotations

import time
from typing import Any

from matrixhpc.config import RunConfig
from matrixhpc.data.fingerprint import input_fingerprint
from matrixhpc.data.readers import tally_rows
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.rundir import RunDir


def record_run(rd: RunDir, cfg: RunConfig, launcher: str, **fields: Any) -> dict[str, Any]:
    """Create run.json on first call (fingerprints, total tasks), update it after.

    ``total_tasks`` counts the tasks the workers will admit (valid rows x trials),
    never bad rows, or a finished run would show 150/153 forever. Reading the
    dataset here, before anything launches, also means a file that cannot be read
    raises :class:`~matrixhpc.data.readers.DatasetError` before any process starts.
    """
    path = rd.run_info
    run = read_json(path)
    if run is None:
        good, bad = tally_rows(cfg.dataset.path, cfg.dataset.limit, cfg.dataset.required)
        run = {
            "name": cfg.name,
            "launcher": launcher,
            "started": time.time(),
            "config_hash": cfg.fingerprint(),
            "input_fingerprint": input_fingerprint(cfg.dataset.path),
            "total_tasks": good * cfg.dataset.trials,
            "bad_rows": bad,
        }
    run.update(fields)
    atomic_write_json(path, run)
    return run
