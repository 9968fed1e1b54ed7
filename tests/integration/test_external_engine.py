"""engine: external — a run uses an OpenAI-compatible endpoint it did not start."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import REPO, matrixhpc, records, wait_for

from matrixhpc.llm.engines.process import free_port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def endpoint() -> object:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "matrixhpc",
            "serve",
            "simulated",
            "--port",
            str(port),
            "--profile",
            "zero",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(lambda: _answers(f"{url}/models"), 60)
    yield url
    proc.terminate()
    proc.wait(10)


def test_run_against_external_endpoint(tmp_path: Path, endpoint: str) -> None:
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "hello.yaml"),
        "--local",
        "services.llm.engine=external",
        f"services.llm.url={endpoint}",
        "services.llm.model=anything",
        "--run-dir",
        str(run_dir),
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert len(recs) == 20
    assert all(r["status"] == "ok" for r in recs)
    assert all(len(r["history"]) == 2 and r["history"][1]["content"] for r in recs)


def test_engine_external_swaps_the_service_for_the_url(tmp_path: Path, endpoint: str) -> None:
    """`--engine external --url`: the config's llama.cpp is never started; with no --model
    the requests name the model the endpoint lists (the standalone server's is `llm`)."""
    run_dir = tmp_path / "run"
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "hello.yaml"),
        "--local",
        "--engine",
        "external",
        "--url",
        endpoint,
        "dataset.limit=5",
        "--run-dir",
        str(run_dir),
    )
    assert proc.returncode == 0, proc.stderr
    recs = records(run_dir)
    assert len(recs) == 5
    assert all(r["status"] == "ok" and r["history"][1]["content"] for r in recs)
    log = (run_dir / "logs" / "llm-0.log").read_text()
    assert f"registered: {endpoint} (llm)" in log
    assert not list((run_dir / "logs").glob("*.llamacpp.log"))
    with_model = tmp_path / "named"
    proc = matrixhpc("run", str(REPO / "configs" / "hello.yaml"), "--local", "--engine",
                     "external", "--url", endpoint, "--model", "my-model", "dataset.limit=1",
                     "--run-dir", str(with_model))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"registered: {endpoint} (my-model)" in (with_model / "logs" / "llm-0.log").read_text()


def test_unreachable_external_endpoint_fails_fast(tmp_path: Path) -> None:
    port = free_port()
    proc = matrixhpc(
        "run",
        str(REPO / "configs" / "hello.yaml"),
        "--local",
        "services.llm.engine=external",
        f"services.llm.url=http://127.0.0.1:{port}/v1",
        "services.llm.startup_timeout=3",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 1
    assert "is not usable" in proc.stderr
