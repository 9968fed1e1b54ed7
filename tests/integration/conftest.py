"""Helpers for multi-process tests: a small dialogue workflow over the simulated engine."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from slurm_cluster import slurm_cluster_fixture  # noqa: F401  (the `slurm_cluster` fixture)

REPO = Path(__file__).resolve().parents[2]


def mcq_rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"q{i}",
            "question": f"Question number {i}?",
            "options": ["w", "x", "y", "z"],
            "answer": "ABCD"[i % 4],
        }
        for i in range(n)
    ]


def write_dataset(path: Path, rows: list[dict[str, Any]], extra_lines: list[str] = ()) -> Path:  # type: ignore[assignment]
    lines = [json.dumps(r) for r in rows] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n")
    return path


def dialogue_config(tmp: Path, dataset: Path, scale: float = 0.002, **sections: Any) -> Path:
    """The Coral workflow on the simulated engine (time scale ``scale``); sections override."""
    cfg = yaml.safe_load((REPO / "configs" / "coral.yaml").read_text())
    cfg["services"]["llm"].update(
        engine="simulated",
        replicas=2,
        max_concurrency=256,
        simulated={"profile": "h100-llama3.1-8b", "time_scale": scale},
    )
    cfg["dataset"]["path"] = str(dataset)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path = tmp / "workflow.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def matrixhpc(
    *args: str, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrixhpc", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def records(run_dir: Path) -> list[dict[str, Any]]:
    out = []
    for shard in sorted(glob.glob(str(run_dir / "output" / "part-*.jsonl"))):
        out += [json.loads(line) for line in Path(shard).read_text().splitlines()]
    return out


def assert_complete(recs: list[dict[str, Any]], expected: int) -> None:
    ids = [r["id"] for r in recs]
    assert len(ids) == expected, f"{len(ids)} records, expected {expected}"
    assert len(set(ids)) == expected, "duplicate task ids in the output"
    for r in recs:
        assert r["status"] == "ok", r
        assert r["hops"] == len(r["history"]), r["id"]
        roles = [t["role"] for t in r["history"]]
        assert roles[:3] == ["student", "extractor", "matcher"], roles
        for turn in r["history"]:
            assert not turn.get("error"), turn
            if turn["role"] in ("student", "teacher"):
                assert turn["content"]
                assert turn["usage"]["completion_tokens"] > 0
        assert r["state"]["agreed"] or r["state"]["turns"] >= 6


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "mcq.jsonl", mcq_rows(50))


def start_run(cfg: Path, run_dir: Path, *args: str) -> subprocess.Popen[str]:
    """`matrixhpc run` in the background (``--local`` unless ``args`` name a launcher)."""
    launcher = [] if "--slurm" in args else ["--local"]
    argv = [
        sys.executable,
        "-m",
        "matrixhpc",
        "run",
        str(cfg),
        *launcher,
        "--run-dir",
        str(run_dir),
        *args,
    ]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for(predicate: Callable[[], object], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise TimeoutError("condition not met")


def done_count(run_dir: Path) -> int:
    """Tasks written so far, from the workers' status files."""
    total = 0
    for path in (run_dir / "status").glob("*.json"):
        with contextlib.suppress(ValueError, KeyError):  # a file mid-replace
            total += json.loads(path.read_text())["done"]
    return total
