"""Text output: the results table (plain or Markdown) and a description of the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

COLUMNS = (
    ("design", "design", "{}"),
    ("inflight", "in-flight", "{}"),
    ("workers", "procs", "{}"),
    ("output_tokens_per_s", "out tok/s", "{:.0f}"),
    ("sustained_tokens_per_s", "sustained tok/s", "{:.0f}"),
    ("tasks_per_s", "tasks/s", "{:.1f}"),
    ("llm_utilisation", "LLM util", "{:.1%}"),
    ("llm_utilisation_whole_run", "util (run)", "{:.1%}"),
    ("latency_p50_s", "p50 s", "{:.2f}"),
    ("latency_p99_s", "p99 s", "{:.2f}"),
    ("cpu_us_per_hop", "CPU us/hop", "{:.0f}"),
    ("rss_framework_peak_mb", "RSS MiB", "{:.0f}"),
    ("kib_per_inflight_task", "KiB/task", "{:.1f}"),
)


def _cells(run: dict[str, Any]) -> list[str]:
    return [fmt.format(run.get(key, "")) if key in run else "-" for key, _, fmt in COLUMNS]


def table(runs: list[dict[str, Any]], header: bool = True) -> str:
    widths = [max(10, len(title)) for _, title, _ in COLUMNS]
    lines = []
    if header:
        lines.append(" ".join(t.rjust(w) for (_, t, _), w in zip(COLUMNS, widths, strict=True)))
    lines += [
        " ".join(c.rjust(w) for c, w in zip(_cells(run), widths, strict=True)) for run in runs
    ]
    return "\n".join(lines)


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(_cells(run)) + " |" for run in runs]
    return "\n".join(lines)


def commit() -> str:
    """The measured runtime's commit (``MATRIXHPC_COMMIT`` for an exported tree), + dirty."""
    import subprocess

    if os.environ.get("MATRIXHPC_COMMIT"):
        return os.environ["MATRIXHPC_COMMIT"]
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    try:
        head, dirty = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "matrixhpc")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as fh:
            mem_gib = int(fh.readline().split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpus": os.cpu_count(),
        "mem_gib": round(mem_gib, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_avg": os.getloadavg(),
        "commit": commit(),
    }


def plot(inflight: dict[str, Any], path: Path, capacity_tps: float) -> None:
    """Throughput against offered concurrency for the three designs, and p2p's ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def by_design(design: str) -> list[dict[str, Any]]:
        return sorted((r for r in inflight["runs"] if r["design"] == design),
                      key=lambda r: r["inflight"])  # fmt: skip

    runs = {design: by_design(design) for design in ("p2p", "batch", "central")}
    styles = {"p2p": ("o", "-", 2.5), "batch": ("s", "-", 1.5), "central": ("D", "--", 1.5)}
    colors = {"p2p": "tab:blue", "batch": "tab:orange", "central": "tab:green"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for design, points in runs.items():
        marker, line, width = styles[design]
        xs = [r["inflight"] for r in points]
        left.plot(xs, [r["output_tokens_per_s"] / 1000 for r in points], marker=marker,
                  linestyle=line, linewidth=width, color=colors[design], label=design)  # fmt: skip
    if capacity_tps:
        left.axhline(capacity_tps / 1000, color="grey", linestyle=":", linewidth=1,
                     label="capacity (load generator)")  # fmt: skip
    left.set_ylabel("output tokens/s, thousands (whole run)")
    left.set_title("Throughput, 2 worker processes, 2 simulated replicas")
    mine = {r["inflight"]: r for r in runs["p2p"]}
    for other, marker in (("batch", "s"), ("central", "D")):
        pairs = [(r["inflight"], mine[r["inflight"]], r) for r in runs[other]
                 if r["inflight"] in mine]  # fmt: skip
        for key, line in (("output_tokens_per_s", "-"), ("sustained_tokens_per_s", ":")):
            label = f"p2p / {other}" + (" (sustained)" if line == ":" else "")
            right.plot([x for x, _, _ in pairs], [m[key] / o[key] for _, m, o in pairs],
                       marker=marker, linestyle=line, color=colors[other], label=label)  # fmt: skip
    right.axhline(1.0, color="grey", linewidth=1)
    right.set_ylabel("throughput ratio")
    right.set_title("p2p over each baseline")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("in-flight tasks (offered concurrency)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Print the Markdown tables of every results file (for benchmarks/README.md);
    ``--plot`` redraws ``throughput.png`` from ``sweep_inflight.json``."""
    import json
    import sys

    results = Path(__file__).resolve().parent / "results"
    if "--plot" in sys.argv:
        data = json.loads((results / "sweep_inflight.json").read_text())
        plot(data, results / "throughput.png", data["capacity"]["tokens_per_s"])
        return
    for name in ("quick", "sweep_inflight", "sweep_workers", "sweep_overhead"):
        path = results / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        cap = data.get("capacity", {}).get("tokens_per_s")
        print(f"### {name}" + (f" (capacity {cap:.0f} tok/s)" if cap else ""))
        print()
        print(markdown(data["runs"]))
        print()
        if data.get("framework_bound_runs"):
            print(f"### {name}: framework-bound (zero-latency engine)")
            print()
            print(markdown(data["framework_bound_runs"]))
            print()


if __name__ == "__main__":
    main()
