"""A full disk mid-run (a real small tmpfs): workers stop resumably and say why, nothing on
disk is damaged, and `matrixhpc resume` once space is freed writes every task once."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    assert_complete,
    dialogue_config,
    done_count,
    matrixhpc,
    mcq_rows,
    records,
    start_run,
    wait_for,
    write_dataset,
)


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs: a filesystem this test can fill (needs root, as in CI)."""
    mount = tmp_path / "scratch"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write until the filesystem refuses (ENOSPC)."""
    with contextlib.suppress(OSError), path.open("wb") as fh:  # the run may have filled it
        while True:
            fh.write(b"\0" * 2**16)
            fh.flush()


def test_a_full_disk_stops_the_run_loudly_and_resume_completes(
    tmp_path: Path, scratch: Path
) -> None:
    data = write_dataset(tmp_path / "mcq.jsonl", mcq_rows(50))
    cfg = dialogue_config(tmp_path, data, 0.5, workers={"count": 2})  # ~20 s undisturbed
    run_dir = scratch / "run"
    launcher = start_run(cfg, run_dir, "dataset.trials=4", "workers.restarts=1")
    wait_for(lambda: done_count(run_dir) >= 20)
    _fill(scratch / "filler")
    _, err = launcher.communicate(timeout=180)
    assert launcher.returncode != 0, "a run whose disk is full cannot finish"
    assert "Traceback" not in err.split("last lines of")[0]
    assert "bytes free on the filesystem" in err or "No space left" in err, err[-2000:]
    (scratch / "filler").unlink()  # the operator frees space
    done = matrixhpc("resume", str(run_dir), timeout=300)
    if done.returncode != 0:  # a second pass if a worker stopped while space was tight
        done = matrixhpc("resume", str(run_dir), timeout=300)
    assert done.returncode == 0, done.stderr
    assert_complete(records(run_dir), 200)
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["records"] == 200
    assert manifest["state"] == "finished"
