"""The README's main job on the real embedded engine (llama.cpp + SmolLM2-135M)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import REPO, matrixhpc, records


def test_main_job_on_embedded_engine(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "coral.yaml"),
        "--local",
        "dataset.limit=3",
        "--run-dir",
        str(run_dir),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert sorted(r["id"] for r in recs) == ["r0-t0", "r1-t0", "r2-t0"]
    for r in recs:
        assert r["status"] == "ok", r
        spoken = [t for t in r["history"] if t["role"] in ("student", "teacher")]
        assert spoken
        assert spoken[0]["role"] == "student"
        for turn in spoken:
            assert turn["content"].strip(), "every LLM turn carries real text"
            assert turn["usage"]["completion_tokens"] > 0
            assert turn["replica"] == "r0"
        assert isinstance(r["state"]["agreed"], bool)
        assert r["state"]["turns"] == len(spoken)


def test_engine_that_dies_at_startup_fails_fast(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "hello.yaml"),
        "--local",
        "services.llm.model=/nonexistent/model.gguf",
        "--run-dir",
        str(tmp_path / "run"),
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert "exited with code" in proc.stderr
    assert "during start-up" in proc.stderr
    assert "nonexistent" in proc.stderr, "the server's own last log lines are shown"
    assert elapsed < 60, "a dead server must not be waited on until the start-up deadline"
