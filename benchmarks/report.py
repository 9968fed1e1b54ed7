"""Text output: the results table (plain or Markdown) and a description of the machine."""

from __future__ import annotations

import os
import platform
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
    for run in runs:
        lines.append(" ".join(c.rjust(w) for c, w in zip(_cells(run), widths, strict=True)))
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
    from pathlib import Path

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


def main() -> None:
    """Print the Markdown tables of every results file (for benchmarks/README.md)."""
    import json
    from pathlib import Path

    results = Path(__file__).resolve().parent / "results"
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


if __name__ == "__main__":
    main()
