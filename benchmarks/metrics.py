"""Per-design numbers from what a run leaves behind: output records and status files.

Every design writes the runtime's record format (``Task.to_record``), so one function
measures them all:

* output tokens/s and tasks/s: totals over the wall time from the first step's start to
  the last task's finish;
* task latency: a task's finish minus the start of its first step (admission queueing is
  not latency; every design stamps these the same way), p50 and p99;
* sustained output tokens/s: over the *admission phase* (first step to the last task's
  first step), i.e. without the final drain that every run ends with. For the batch design
  this spans whole batch cycles; on a dataset much larger than the in-flight count the
  whole-run figure converges to it;
* LLM utilisation: output tokens/s over the *steady window* (the admission phase minus its
  first 20 %, the warm-up) over the replicas' saturated capacity; and, as a whole-run
  figure, plain tokens/s over it. A window counts the tokens of the LLM calls that
  finished inside it;
* CPU per hop: CPU seconds of the framework processes (workers, dispatcher) from their
  first status snapshot to their last, over the agent steps they ran;
* memory: peak resident memory of the framework processes, per in-flight task.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STEADY_START = 0.2  # share of the admission phase skipped as warm-up


@dataclass(frozen=True, slots=True)
class Span:
    start: float
    end: float
    tokens: int


def load_records(output_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(output_dir.glob("part-*.jsonl")):
        with path.open(encoding="utf-8") as fh:
            records.extend(json.loads(line) for line in fh if line.strip())
    return records


def llm_spans(records: list[dict[str, Any]]) -> list[Span]:
    spans = []
    for rec in records:
        for turn in rec["history"]:
            usage = turn.get("usage")
            if usage and usage.get("completion_tokens"):
                t = turn["timings"]
                spans.append(Span(t["start"], t["end"], usage["completion_tokens"]))
    return spans


def rate_in_window(spans: list[Span], a: float, b: float) -> float:
    """Output tokens/s of the LLM calls that *finished* inside ``[a, b]``.

    Counting completions (not spreading each call's tokens over its duration) matters:
    a call's duration includes its wait in the client's and the engine's queues, and
    spreading would credit a window's end with tokens not generated yet.
    """
    if b <= a:
        return 0.0
    return sum(s.tokens for s in spans if a <= s.end <= b) / (b - a)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def _first_start(rec: dict[str, Any]) -> float:
    history = rec["history"]
    if history and history[0].get("timings"):
        return float(history[0]["timings"]["start"])
    return float(rec["created"])


def throughput(records: list[dict[str, Any]], capacity_tps: float) -> dict[str, float]:
    """Tokens/s, tasks/s, latency and utilisation of one run's records."""
    spans = llm_spans(records)
    starts = [_first_start(r) for r in records]
    ends = [float(r["finished"]) for r in records]
    t0, t1 = min(starts), max(ends)
    admitted = max(starts)
    wall = max(t1 - t0, 1e-9)
    tokens = sum(s.tokens for s in spans)
    latencies = [e - s for s, e in zip(starts, ends, strict=True)]
    a = t0 + STEADY_START * (admitted - t0)
    steady = rate_in_window(spans, a, admitted) if admitted - a > 1.0 else tokens / wall
    sustained = rate_in_window(spans, t0, admitted) if admitted - t0 > 1.0 else tokens / wall
    return {
        "tasks": len(records),
        "failed": sum(1 for r in records if r["status"] != "ok"),
        "llm_calls": len(spans),
        "output_tokens": tokens,
        "wall_s": wall,
        "output_tokens_per_s": tokens / wall,
        "tasks_per_s": len(records) / wall,
        "sustained_tokens_per_s": sustained,
        "latency_p50_s": percentile(latencies, 0.50),
        "latency_p99_s": percentile(latencies, 0.99),
        "steady_window_s": max(0.0, admitted - a),
        "steady_tokens_per_s": steady,
        "llm_utilisation": steady / capacity_tps if capacity_tps else 0.0,
        "llm_utilisation_whole_run": tokens / wall / capacity_tps if capacity_tps else 0.0,
    }


def cpu_per_hop(statuses: list[dict[str, Any]]) -> dict[str, float]:
    """Framework CPU per agent step, from status snapshots (``*_start`` = first snapshot)."""
    cpu = sum(s["cpu_s"] - s.get("cpu_s_start", 0.0) for s in statuses)
    steps = sum(s.get("steps", 0) - s.get("steps_start", 0) for s in statuses)
    return {"hops": steps, "cpu_s": cpu, "cpu_us_per_hop": 1e6 * cpu / steps if steps else 0.0}


def machine_load(cpu: dict[str, float], wall: float, cpus: int) -> dict[str, float]:
    """Share of the machine's cores the run used, and of one core its busiest engine used."""
    used = cpu["framework_cpu_s"] + cpu["engine_cpu_s"]
    return {
        **cpu,
        "machine_cpu_share": used / max(wall * cpus, 1e-9),
        "busiest_engine_core_share": cpu["engine_cpu_s_max"] / max(wall, 1e-9),
    }


def memory(peak: dict[str, float], inflight: int) -> dict[str, float]:
    return {
        "rss_framework_peak_mb": peak["framework_mb"],
        "rss_engines_peak_mb": peak["engine_mb"],
        "rss_total_peak_mb": peak["total_mb"],
        "kib_per_inflight_task": 1024 * peak["framework_mb"] / max(1, inflight),
    }
