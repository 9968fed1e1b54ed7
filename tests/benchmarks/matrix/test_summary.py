"""Medians over repeats, matrixhpc-over-Matrix ratios and the one-line summary."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.matrix.summary import markdown, ratios, summarise, summary_line


def run(regime: str, fw: str, tokens: float, cpu: float, tasks: float) -> dict[str, Any]:
    return {"regime": regime, "framework": fw, "output_tokens_per_s": tokens, "cpu_s": cpu,
            "tasks_per_s": tasks, "rss_peak_mb": 100.0, "startup_s": 2.0}  # fmt: skip


RUNS = [
    run("engine-bound", "matrixhpc", 5000, 4, 3.0),
    run("engine-bound", "matrix", 2000, 100, 1.0),
    run("engine-bound", "matrixhpc", 6000, 6, 3.4),
    run("engine-bound", "matrix", 4000, 140, 1.4),
    run("zero-latency", "matrixhpc", 9e5, 2, 500.0),
    run("zero-latency", "matrix", 9e3, 60, 4.0),
]


def test_medians_per_regime_and_framework() -> None:
    summary = summarise(RUNS)
    mine = summary["engine-bound"]["matrixhpc"]
    assert mine["repeats"] == 2
    assert mine["output_tokens_per_s"] == 5500
    assert mine["cpu_s"] == 5
    assert summary["engine-bound"]["matrix"]["output_tokens_per_s"] == 3000


def test_ratios_are_matrixhpc_over_matrix() -> None:
    r = ratios(summarise(RUNS)["engine-bound"])
    assert r["tokens"] == pytest.approx(5500 / 3000)
    assert r["cpu"] == pytest.approx(5 / 120)
    assert r["rss"] == 1.0
    assert ratios({"matrixhpc": {"cpu_s": 1.0}})["cpu"] == 0.0  # no Matrix run: no ratio


def test_summary_line() -> None:
    line = summary_line(summarise(RUNS))
    assert line == (
        "matrixhpc_vs_matrix tokens_ratio=1.83 cpu_ratio=0.042 "
        "zero_latency_tasks_ratio=125.0 zero_latency_cpu_ratio=0.033"
    )
    only_engine = summary_line(summarise([r for r in RUNS if r["regime"] == "engine-bound"]))
    assert only_engine == "matrixhpc_vs_matrix tokens_ratio=1.83 cpu_ratio=0.042"


def test_markdown_has_a_row_per_framework() -> None:
    text = markdown(summarise(RUNS))
    assert text.count("| matrixhpc |") == 2
    assert text.count("| matrix |") == 2
    assert "**zero-latency**" in text
