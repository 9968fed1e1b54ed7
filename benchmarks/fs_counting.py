"""Every filesystem call of the code under test, counted by kind, second and place.

Used by :mod:`benchmarks.metadata` (which runs the real registry code of N workers on a
simulated clock) and :mod:`benchmarks.metadata_strace` (which compares that model with a
real run's strace by the same places). Wraps ``os.stat``, ``os.scandir``,
``os.replace``/``rename``, ``os.utime``, ``os.unlink``, ``os.mkdir``, ``os.link``,
``os.open`` and ``io.open``/``open`` (pathlib goes through these); a close is counted per
open; one listing counts as one ``getdents`` (plus one per 1,000 entries).
"""

from __future__ import annotations

import builtins
import io
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

METADATA = ("open", "stat", "getdents", "rename", "utime", "unlink", "mkdir", "link")


class Counts:
    """Operations by kind, by simulated second, weighted (a sampled reader stands for
    N / readers workers)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.weight = 1.0
        self.on = False
        self.by_kind: dict[str, float] = defaultdict(float)
        self.by_second: dict[int, float] = defaultdict(float)
        self.by_place: dict[tuple[str, str], float] = defaultdict(float)  # (place, kind)
        self.root: Path | None = None  # the run directory, for :func:`place`

    def hit(self, kind: str, n: float = 1.0, where: Any = None) -> None:
        if self.on:
            self.by_kind[kind] += n * self.weight
            if kind in METADATA:
                self.by_second[int(self.now)] += n * self.weight
                self.by_place[(place(self.root, where), kind)] += n * self.weight

    def reset(self) -> None:
        self.by_kind.clear()
        self.by_second.clear()
        self.by_place.clear()


def place(root: Path | None, where: Any) -> str:
    """Which part of the run directory a call touched: ``registry``, ``status``, ``index``
    (the shard indexes), ``run.json`` or ``other`` (for benchmarks.metadata_strace, which compares
    these with a real run's). A file descriptor is resolved through /proc."""
    if isinstance(where, int):
        try:
            where = os.readlink(f"/proc/self/fd/{where}")
        except OSError:
            return "other"
    if root is None or not isinstance(where, (str, os.PathLike)):
        return "other"
    try:
        parts = Path(os.fspath(where)).relative_to(root).parts
    except ValueError:
        return "other"
    if parts[:1] in (("registry",), ("status",), ("run.json",)):
        return parts[0]
    return "index" if parts[:2] == ("output", ".index") else "other"


COUNTS = Counts()


@contextmanager
def counting() -> Iterator[None]:
    """Wrap the filesystem calls the code under test makes (see the module docstring)."""
    saved: dict[tuple[Any, str], Any] = {}

    def wrap(owner: Any, attr: str, kind: str, extra: Callable[..., None] | None = None) -> None:
        real = getattr(owner, attr)
        saved[(owner, attr)] = real

        def counted(*args: Any, **kwargs: Any) -> Any:
            COUNTS.hit(kind, where=args[0] if args else None)
            if extra is not None:
                extra(*args)
            return real(*args, **kwargs)

        setattr(owner, attr, counted)

    def scandir(*args: Any, **kwargs: Any) -> Any:
        where = args[0] if args else None
        COUNTS.hit("getdents", where=where)
        entries = list(real_scandir(*args, **kwargs))
        COUNTS.hit("getdents", len(entries) // 1000, where=where)
        return _Listing(entries)

    real_scandir = os.scandir
    saved[(os, "scandir")] = real_scandir
    os.scandir = scandir  # type: ignore[assignment]
    for attr, kind in (
        ("stat", "stat"),
        ("replace", "rename"),
        ("rename", "rename"),
        ("utime", "utime"),
        ("unlink", "unlink"),
        ("mkdir", "mkdir"),
        ("link", "link"),
        ("open", "open"),
        ("fsync", "fsync"),
    ):
        wrap(os, attr, kind, (lambda *_: COUNTS.hit("close")) if attr == "open" else None)
    for owner in (io, builtins):
        wrap(owner, "open", "open", lambda *_: COUNTS.hit("close"))
    try:
        yield
    finally:
        for (owner, attr), real in saved.items():
            setattr(owner, attr, real)


class _Listing(list[Any]):
    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *_: object) -> None:
        return None
