"""A run's figures from the server's counter samples: window, start-up, rates."""

from __future__ import annotations

import pytest

from benchmarks.matrix.server import Counters
from benchmarks.matrix.window import active_window, run_figures


def samples() -> list[Counters]:
    """Idle at t=10 and 11, busy from 12, the last tokens seen at 15, idle after."""
    return [
        Counters(10.0, tokens=100, requests=5),
        Counters(11.0, tokens=100, requests=5),
        Counters(12.0, tokens=100, requests=5, running=4, prompt_tokens=0),
        Counters(13.0, tokens=300, requests=7, running=2, prompt_tokens=200),
        Counters(14.0, tokens=500, requests=9, running=2, prompt_tokens=400),
        Counters(15.0, tokens=900, requests=13, prompt_tokens=800),
        Counters(16.0, tokens=900, requests=13, prompt_tokens=800),
    ]


def test_window_ends_halfway_between_scrapes() -> None:
    assert active_window(samples()) == (11.5, 14.5)


def test_figures_count_only_the_runs_own_tokens() -> None:
    fig = run_figures(samples(), launched=9.0)
    assert fig["output_tokens"] == 800
    assert fig["requests"] == 8
    assert fig["active_s"] == pytest.approx(3.0)
    assert fig["startup_s"] == pytest.approx(2.5)
    assert fig["output_tokens_per_s"] == pytest.approx(800 / 3)
    assert fig["mean_running"] == pytest.approx((4 + 2 + 2) / 3)  # samples at 12, 13, 14
    assert fig["mean_prompt_tokens"] == pytest.approx(100)


def test_a_run_that_sent_nothing_has_no_window() -> None:
    idle = [Counters(1.0, tokens=5), Counters(2.0, tokens=5)]
    assert active_window(idle) is None
    assert run_figures(idle, launched=0.0)["output_tokens_per_s"] == 0.0


def test_a_run_inside_one_poll_interval_gets_half_an_interval() -> None:
    quick = [Counters(1.0), Counters(1.2, tokens=50, requests=2), Counters(1.4, tokens=50)]
    start, end = active_window(quick) or (0.0, 0.0)
    assert start == pytest.approx(1.1)
    assert end - start == pytest.approx(0.1)
