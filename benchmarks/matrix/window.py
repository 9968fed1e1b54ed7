"""One run's figures from the server's counters: start-up, active window, throughput.

The poller scrapes the shared server every few tens of milliseconds while a framework
runs. The *active window* starts at the first scrape that shows a request (one running
or waiting, or one more served) and ends at the first scrape that shows the run's final
token count; each end is placed halfway between that scrape and the one before it, so
either is off by at most half a poll interval. Start-up is launch to the window's start
(process start, imports, Ray or worker start-up, team creation, first admission).
"""

from __future__ import annotations

from statistics import fmean
from typing import Any

from benchmarks.matrix.server import Counters


def _midpoint(samples: list[Counters], k: int) -> float:
    return samples[k].t if k == 0 else (samples[k - 1].t + samples[k].t) / 2


def active_window(samples: list[Counters]) -> tuple[float, float] | None:
    """(start, end) of the requests a run sent; None if it sent none."""
    if len(samples) < 2:
        return None
    base, final = samples[0], samples[-1]
    first = next((k for k, s in enumerate(samples) if s.busy or s.requests > base.requests), None)
    if first is None or final.tokens <= base.tokens:
        return None
    last = next(k for k, s in enumerate(samples) if s.tokens >= final.tokens)
    start, end = _midpoint(samples, first), _midpoint(samples, last)
    # a run shorter than one poll interval: half an interval, not zero
    return start, max(end, start + (samples[last].t - samples[last - 1].t) / 2)


def run_figures(samples: list[Counters], launched: float) -> dict[str, Any]:
    """Server-side figures of one run: tokens and requests it caused, per second of its
    active window, and the mean number of requests holding a batch slot meanwhile."""
    window = active_window(samples)
    if window is None:
        return {"output_tokens": 0.0, "requests": 0.0, "active_s": 0.0, "startup_s": 0.0,
                "output_tokens_per_s": 0.0, "requests_per_s": 0.0,
                "mean_running": 0.0, "mean_prompt_tokens": 0.0}  # fmt: skip
    start, end = window
    active = end - start
    tokens = samples[-1].tokens - samples[0].tokens
    requests = samples[-1].requests - samples[0].requests
    prompt = samples[-1].prompt_tokens - samples[0].prompt_tokens
    inside = [s.running for s in samples if start <= s.t <= end]
    return {
        "output_tokens": tokens,
        "requests": requests,
        "window_start": start,
        "window_end": end,
        "active_s": active,
        "startup_s": start - launched,
        "output_tokens_per_s": tokens / active,
        "requests_per_s": requests / active,
        "mean_running": fmean(inside) if inside else 0.0,
        "mean_prompt_tokens": prompt / requests if requests else 0.0,
    }
