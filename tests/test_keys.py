"""The run's keys: created once, private, the same for every process that races for them."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.keys import CurveKeys, KeyFileError, service_key

RACERS = 4


def test_curve_keys_are_created_private_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "curve.key"
    keys = CurveKeys.create(path)
    assert len(keys.public) == 40
    assert len(keys.secret) == 40
    assert keys.public != keys.secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert CurveKeys.create(path) == keys


def _race_for_keys(path: str, barrier: Any, out: Any) -> None:
    barrier.wait()  # every process asks at the same moment
    out.put(CurveKeys.create(Path(path)).public)


def test_processes_racing_for_the_keys_all_get_the_winners(tmp_path: Path) -> None:
    """Before: each process that found no file generated a pair and opened the file
    with O_EXCL; a loser failed with FileExistsError or read the winner's file while it
    was still empty."""
    ctx = multiprocessing.get_context("fork")
    barrier, out = ctx.Barrier(RACERS), ctx.Queue()
    path = tmp_path / "curve.key"
    procs = [
        ctx.Process(target=_race_for_keys, args=(str(path), barrier, out)) for _ in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    assert [proc.exitcode for proc in procs] == [0] * RACERS
    publics = {out.get(timeout=5) for _ in range(RACERS)}
    assert publics == {CurveKeys.create(path).public}
    assert [p.name for p in tmp_path.iterdir()] == ["curve.key"]


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "curve.key"
    path.write_bytes(b"")
    with pytest.raises(KeyFileError, match=r"curve\.key: not a CURVE keypair"):
        CurveKeys.create(path)


def test_service_keys_are_private_stable_and_per_service(tmp_path: Path) -> None:
    a = service_key(tmp_path, "a")
    assert a == tmp_path / "a.key"
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    first = a.read_text()
    assert len(first) >= 32
    assert service_key(tmp_path, "a").read_text() == first
    assert service_key(tmp_path, "b").read_text() != first
