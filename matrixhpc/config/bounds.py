"""Typed, bounded fields for the schema: counts, durations and names with a did-you-mean.

Why: pydantic's lax defaults accept ``true`` as the count 1, ``10**30`` workers and
``.inf`` seconds; each of those validated and then failed far from the config (a
launcher trying to start 10**30 processes, a timer that overflows, a profile looked
up after launch). Every count here is a strict integer (no bools, no floats, no
strings) inside a stated range, and every duration is a finite number of seconds
with an upper bound well past any real need, so a config either makes sense or is
rejected before anything starts, with the dotted key and the reason.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from pydantic import Field

#: The longest duration any key accepts: 30 days. Past every Slurm time limit seen in
#: practice, and far below what would overflow an event loop's timer.
MAX_SECONDS = 30 * 24 * 3600.0

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def integer(default: Any, low: int, high: int, what: str) -> Any:
    """A strict integer in ``[low, high]``; the range is part of the key's description."""
    return Field(default, strict=True, ge=low, le=high, description=f"{what} ({low}..{high})")


def duration(default: float, what: str, *, zero_ok: bool = False, high: float = MAX_SECONDS) -> Any:
    """A finite duration in seconds, > 0 (>= 0 with ``zero_ok``) and at most ``high``.

    Strict: an integer is a fine number of seconds, a bool or a string is not.
    """
    return Field(
        default,
        strict=True,
        allow_inf_nan=False,
        ge=0.0 if zero_ok else None,
        gt=None if zero_ok else 0.0,
        le=high,
        description=f"{what} (seconds, finite, {'>= 0' if zero_ok else '> 0'}, <= {high:.0f})",
    )


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, word: str, choices: Iterable[str]) -> str:
    """The reason for a name that is not one of ``choices``: suggestion and the full list."""
    known = sorted(choices)
    return f"unknown {kind} {word!r}{did_you_mean(word, known)}; known: {', '.join(known)}"
