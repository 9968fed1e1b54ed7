"""``RUN_DIR/run.json``: what was launched, how, with which input; shared by launchers."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from matrixhpc.config import RunConfig, dump_config
from matrixhpc.data.fingerprint import input_fingerprint
from matrixhpc.data.readers import tally_rows
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.rundir import RunDir
from matrixhpc.status import read_status


@dataclass(frozen=True)
class Fingerprints:
    """What run.json records of the config and the input it started with, so that a
    resume can tell that either changed (records so far came from the old ones)."""

    config_hash: str
    input_fingerprint: str

    @classmethod
    def of(cls, cfg: RunConfig) -> Fingerprints:
        """Of ``cfg`` and its dataset as they are now (reads every dataset file)."""
        return cls(cfg.fingerprint(), input_fingerprint(cfg.dataset.path))

    def fields(self) -> dict[str, str]:
        """As run.json's keys."""
        return asdict(self)


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
            **Fingerprints.of(cfg).fields(),
            "total_tasks": good * cfg.dataset.trials,
            "bad_rows": bad,
        }
    run.update(fields)
    atomic_write_json(path, run)
    return run


def launch_marks(rd: RunDir) -> dict[str, Any]:
    """What a launch (or resume) records in run.json so that rates and the ETA count
    only the work done since: when, and how many tasks were already written."""
    done = read_status(rd.root).totals.get("done", 0.0) if rd.run_info.exists() else 0.0
    return {"launched": time.time(), "done_at_launch": int(done)}


def adopt_config(rd: RunDir, cfg: RunConfig, now: Fingerprints) -> None:
    """A resume forced past a changed config or input continues under the new ones:
    ``config.yaml`` and run.json's fingerprints are rewritten, so that the workers
    load what was asked for and the next resume compares against what runs now."""
    dump_config(cfg, rd.config)
    run = read_json(rd.run_info) or {}
    run.update(now.fields())
    atomic_write_json(rd.run_info, run)
