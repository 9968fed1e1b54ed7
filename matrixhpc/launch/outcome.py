"""How a finished run ends for whoever launched it: a summary, and the exit code.

A run whose every task failed used to exit 0, and a pipeline that launched it went on
to train on nothing. Now a finished run exits :data:`EXIT_TOO_MANY_FAILED` when more
than ``run.max_failed_fraction`` of its records failed (default 0.1; 1.0 never), with
the most frequent error messages, read from the manifest (no data is read).
"""

from __future__ import annotations

from typing import Any

EXIT_TOO_MANY_FAILED = 3


def summarise(manifest: dict[str, Any], max_failed_fraction: float) -> tuple[int, list[str]]:
    """The exit code and the lines to print for a finished run's manifest."""
    records = int(manifest.get("records") or 0)
    failed = int(manifest.get("failed") or 0)
    lines = [f"finished: {records} record(s), {records - failed} ok, {failed} failed"]
    ended = manifest.get("ended") or {}
    if ended:
        lines[0] += "; " + ", ".join(f"{n} ended by {why}" for why, n in sorted(ended.items()))
    top = manifest.get("top_errors") or []
    if failed and records and failed / records > max_failed_fraction:
        lines.append(
            f"{failed} of {records} tasks failed ({failed / records:.0%}), more than"
            f" run.max_failed_fraction={max_failed_fraction:g}; most frequent errors:"
        )
        lines += [f"  {n} x {message}" for message, n in top[:5]]
        return EXIT_TOO_MANY_FAILED, lines
    if failed and top:
        lines.append(f"most frequent error: {top[0][1]} x {top[0][0]}")
    return 0, lines
