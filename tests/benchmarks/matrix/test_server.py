"""The shared server's counters, scraped from a real ``matrixhpc serve simulated``, and one
real matrixhpc run of the comparison's config measured through them."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.matrix.dataset import write_rows
from benchmarks.matrix.runs import Workload, run_matrixhpc
from benchmarks.matrix.server import SimServer, parse_metrics


@pytest.fixture(scope="module")
def server() -> Iterator[SimServer]:
    sim = SimServer("zero", 0.0).start()
    try:
        yield sim
    finally:
        sim.stop()


def chat(server: SimServer, max_tokens: int) -> None:
    body = {"model": "llm", "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": max_tokens, "ignore_eos": True}  # fmt: skip
    req = urllib.request.Request(
        server.url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.load(resp)["usage"]["completion_tokens"] == max_tokens


def test_parse_metrics_sums_label_sets_and_skips_others() -> None:
    text = (
        "# HELP sim_generation_tokens_total x\n"
        'sim_generation_tokens_total{model_name="a"} 10\n'
        'sim_generation_tokens_total{model_name="b"} 5\n'
        "sim_requests_total 3\n"
        'vllm:num_requests_running{model_name="a"} 2\n'
        "something_else 99\n"
        'vllm:num_requests_waiting{x="y"} not-a-number\n'
    )
    got = parse_metrics(text, t=1.0)
    assert (got.tokens, got.requests, got.running, got.waiting) == (15, 3, 2, 0)
    assert got.busy


def test_counters_of_a_real_server_count_its_requests(server: SimServer) -> None:
    before = server.wait_idle()
    chat(server, 7)
    chat(server, 5)
    after = server.scrape()
    assert after.tokens - before.tokens == 12
    assert after.requests - before.requests == 2
    assert after.prompt_tokens > before.prompt_tokens
    assert not after.busy


def test_a_matrixhpc_run_of_the_comparison_config(server: SimServer, tmp_path: Path) -> None:
    """The config, its overrides, the run, the measurement: every record complete, and the
    server saw exactly the workload's tokens."""
    w = Workload(tasks=6, inflight=4, turns=2, max_tokens=16, workers=1)
    rows = write_rows(w.tasks, tmp_path / "rows.jsonl")
    result = run_matrixhpc(server, w, rows, tmp_path / "run", timeout=120)
    assert result["exit_code"] == 0
    assert result["records"] == result["records_complete"] == w.tasks
    assert result["output_tokens"] == result["record_tokens"] == w.tokens
    assert result["requests"] == w.tasks * w.turns
    assert result["cpu_s"] > 0
    assert result["rss_peak_mb"] > 0
    assert result["leftover_processes"] == 0
