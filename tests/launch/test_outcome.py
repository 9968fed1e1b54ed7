"""The exit code and summary of a finished run, from its manifest."""

from __future__ import annotations

from matrixhpc.launch.outcome import EXIT_TOO_MANY_FAILED, summarise


def _manifest(records: int, failed: int, **extra: object) -> dict[str, object]:
    return {"records": records, "failed": failed, **extra}


def test_a_clean_run_exits_0_and_says_how_tasks_ended() -> None:
    code, lines = summarise(_manifest(60, 0, ended={"max_steps": 4}), 0.1)
    assert code == 0
    assert lines == ["finished: 60 record(s), 60 ok, 0 failed; 4 ended by max_steps"]


def test_failures_within_the_threshold_are_named_but_exit_0() -> None:
    code, lines = summarise(_manifest(100, 10, top_errors=[["HTTP 500", 10]]), 0.1)
    assert code == 0
    assert lines[-1] == "most frequent error: 10 x HTTP 500"


def test_failures_above_the_threshold_exit_3_with_the_top_errors() -> None:
    top = [[f"error {i}", 10 - i] for i in range(8)]
    code, lines = summarise(_manifest(100, 11, top_errors=top), 0.1)
    assert code == EXIT_TOO_MANY_FAILED == 3
    assert "11 of 100 tasks failed (11%), more than run.max_failed_fraction=0.1" in lines[1]
    assert lines[2:] == [f"  {10 - i} x error {i}" for i in range(5)]


def test_an_empty_run_is_not_a_failure() -> None:
    assert summarise(_manifest(0, 0), 0.0)[0] == 0
