"""Draw the comparison's PNG from its results JSON (needs only matplotlib).

    benchmarks/matrix/.venv/bin/python benchmarks/matrix/plot.py RESULTS.json OUT.png

Run by ``compare.py`` with the Matrix venv's interpreter: the project venv does not carry
matplotlib. Three panels, one bar per framework (median of the repeats, each repeat a
dot): engine-bound output tokens/s against the server's closed-loop ceiling,
zero-latency tasks/s (log scale), and CPU seconds of the framework's processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FRAMEWORKS = ("matrixhpc", "matrix")
COLORS = {"matrixhpc": "tab:blue", "matrix": "tab:red"}


def _bars(ax: Any, data: dict[str, Any], regime: str, key: str, scale: float = 1.0) -> None:
    by_fw = data["summary"].get(regime, {})
    for i, fw in enumerate(FRAMEWORKS):
        if fw not in by_fw:
            continue
        ax.bar(i, by_fw[fw][key] / scale, color=COLORS[fw], alpha=0.75, label=fw)
        dots = [r[key] / scale for r in data["runs"]
                if r["regime"] == regime and r["framework"] == fw]  # fmt: skip
        ax.plot([i] * len(dots), dots, "k.", markersize=6)
    ax.set_xticks(range(len(FRAMEWORKS)), FRAMEWORKS)
    ax.grid(True, axis="y", alpha=0.3)


def main() -> None:
    results, png = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(results.read_text())
    w = data["workload"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    tokens, tasks, cpu = axes
    if "engine-bound" in data["summary"]:
        _bars(tokens, data, "engine-bound", "output_tokens_per_s", 1000)
        ceilings = [r["model_ceiling_tps"] for r in data["runs"] if r["model_ceiling_tps"]]
        if ceilings:
            tokens.axhline(max(ceilings) / 1000, color="grey", linestyle=":",
                           label="server's closed-loop ceiling")  # fmt: skip
        tokens.legend(fontsize=8)
    tokens.set_title("engine-bound: output tokens/s (server counters)", fontsize=10)
    tokens.set_ylabel("thousand output tokens/s")
    if "zero-latency" in data["summary"]:
        _bars(tasks, data, "zero-latency", "tasks_per_s")
        tasks.set_yscale("log")
    tasks.set_title("zero-latency engine: tasks/s (log)", fontsize=10)
    tasks.set_ylabel("complete tasks/s")
    for offset, regime in ((-0.2, "engine-bound"), (0.2, "zero-latency")):
        by_fw = data["summary"].get(regime, {})
        xs = [i + offset for i, fw in enumerate(FRAMEWORKS) if fw in by_fw]
        ys = [by_fw[fw]["cpu_s"] for fw in FRAMEWORKS if fw in by_fw]
        cpu.bar(xs, ys, width=0.38, label=regime, alpha=0.8,
                hatch="" if regime == "engine-bound" else "//")  # fmt: skip
    cpu.set_xticks(range(len(FRAMEWORKS)), FRAMEWORKS)
    cpu.set_title("CPU seconds of the framework's processes (whole run)", fontsize=10)
    cpu.set_ylabel("CPU s")
    cpu.legend(fontsize=8)
    cpu.grid(True, axis="y", alpha=0.3)
    fig.suptitle(
        f"matrixhpc vs Matrix {data['versions']['fair-matrix']}: {w['tasks']} Coral tasks x "
        f"{w['turns']} turns x {w['max_tokens']} tokens, {w['inflight']} in flight, one "
        f"simulated server", fontsize=11,
    )  # fmt: skip
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
