"""Medians over the interleaved repeats, the ratios, the one-line summary and a table.

Every ratio is matrixhpc's figure over Matrix's, in the same regime: ``tokens_ratio``
above 1 means matrixhpc generated more output tokens per second from the same server;
``cpu_ratio`` below 1 means it spent fewer CPU seconds (its processes, whole run) on the
same tokens.
"""

from __future__ import annotations

from statistics import median
from typing import Any

FRAMEWORKS = ("matrixhpc", "matrix")
REGIMES = ("engine-bound", "zero-latency")

COLUMNS = (
    ("framework", "framework", "{}"),
    ("output_tokens_per_s", "out tok/s", "{:.0f}"),
    ("ceiling_share", "of ceiling", "{:.0%}"),
    ("tasks_per_s", "tasks/s", "{:.2f}"),
    ("mean_running", "mean running", "{:.1f}"),
    ("cpu_s", "CPU s", "{:.1f}"),
    ("cpu_s_active", "CPU s (active)", "{:.1f}"),
    ("cpu_ms_per_call", "CPU ms/call", "{:.2f}"),
    ("rss_peak_mb", "peak RSS MiB", "{:.0f}"),
    ("processes", "procs", "{:.0f}"),
    ("startup_s", "start-up s", "{:.1f}"),
    ("ray_start_s", "ray.init s", "{:.1f}"),
    ("records_complete", "complete", "{:.0f}"),
    ("records", "records", "{:.0f}"),
)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median of the numeric figures of repeated runs (same regime, framework)."""
    out: dict[str, Any] = {"repeats": len(runs)}
    keys = {k for r in runs for k, v in r.items() if isinstance(v, int | float)}
    for key in sorted(keys):
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        out[key] = median(values)
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{regime: {framework: medians}}`` of every run."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for regime in REGIMES:
        for fw in FRAMEWORKS:
            mine = [r for r in runs if r["regime"] == regime and r["framework"] == fw]
            if mine:
                out.setdefault(regime, {})[fw] = {"framework": fw, **medians(mine)}
    return out


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def ratios(regime: dict[str, dict[str, Any]]) -> dict[str, float]:
    """matrixhpc over Matrix: output tokens/s, tasks/s, CPU seconds, peak memory."""
    mine, theirs = regime.get("matrixhpc", {}), regime.get("matrix", {})
    keys = {"tokens": "output_tokens_per_s", "tasks": "tasks_per_s", "cpu": "cpu_s",
            "rss": "rss_peak_mb", "startup": "startup_s"}  # fmt: skip
    return {name: _ratio(mine.get(k, 0.0), theirs.get(k, 0.0)) for name, k in keys.items()}


def summary_line(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """``matrixhpc_vs_matrix tokens_ratio=... cpu_ratio=...`` (engine-bound), then the
    zero-latency regime's ratios."""
    parts = ["matrixhpc_vs_matrix"]
    if "engine-bound" in summary:
        r = ratios(summary["engine-bound"])
        parts += [f"tokens_ratio={r['tokens']:.2f}", f"cpu_ratio={r['cpu']:.3f}"]
    if "zero-latency" in summary:
        r = ratios(summary["zero-latency"])
        parts += [
            f"zero_latency_tasks_ratio={r['tasks']:.1f}",
            f"zero_latency_cpu_ratio={r['cpu']:.3f}",
        ]
    return " ".join(parts)


def markdown(summary: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One Markdown table per regime (medians), for benchmarks/README.md."""
    lines: list[str] = []
    for regime, by_fw in summary.items():
        lines += [f"**{regime}**", "", "| " + " | ".join(t for _, t, _ in COLUMNS) + " |",
                  "|" + "---|" * len(COLUMNS)]  # fmt: skip
        for fw in FRAMEWORKS:
            if fw in by_fw:
                row = by_fw[fw]
                cells = [fmt.format(row[k]) if k in row else "-" for k, _, fmt in COLUMNS]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
