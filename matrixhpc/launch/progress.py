"""Progress output for a run: a tqdm bar on a terminal, a periodic line otherwise (CI, logs).

Both launchers follow a run through this, so it is also where a run that makes no
progress is noticed (:mod:`matrixhpc.launch.stall`), and where a closed terminal or
pipe stops mattering (:mod:`matrixhpc.launch.console`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from matrixhpc.launch.console import redirect, say
from matrixhpc.launch.stall import DEFAULT_STALL_WARNING, StallWatch
from matrixhpc.status import RunStatus, StatusReader

LINE_INTERVAL = 10.0


class Progress:
    def __init__(
        self,
        run_dir: Path,
        total: int,
        stall_after: float = DEFAULT_STALL_WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_dir = run_dir
        self.total = total
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="task", dynamic_ncols=True, disable=not self.tty)
        self.stall = StallWatch(stall_after, clock)
        self._last_line = 0.0
        self.reader = StatusReader(run_dir)  # cached: only changed status files re-read

    def update(self, final: bool = False) -> RunStatus:
        status = self.reader.read()
        if self.tty:
            self._draw_bar(status)
        elif final or time.monotonic() - self._last_line >= LINE_INTERVAL:
            self._last_line = time.monotonic()
            say(self._line(status))
        warning = None if final else self.stall.observe(status, self.total)
        if warning is not None:
            say(f"\n[matrixhpc] warning: {warning}")
        return status

    def _draw_bar(self, status: RunStatus) -> None:
        t = status.totals
        self.bar.n = int(t.get("done", 0))
        eta = status.eta()
        self.bar.set_postfix(
            failed=int(t.get("failed", 0)),
            bad_rows=int(t.get("row_errors", 0)),
            turns=int(t.get("steps", 0)),
            tok=int(t.get("tokens_out", 0)),
            tok_s=f"{t.get('tokens_per_s', 0):.0f}",
            eta="-" if eta is None else f"{eta:.0f}s",
            refresh=False,
        )
        try:
            self.bar.refresh()
        except OSError:  # the terminal is gone: lines to the log from now on
            redirect(sys.stderr)
            self.bar.disable = True
            self.tty = False

    def _line(self, status: RunStatus) -> str:
        """Tasks, but also turns and tokens: a multi-turn run shows motion long before
        its first task is written. The ETA is :meth:`RunStatus.eta` (from the turns done
        so far; ``-`` until a first task is written)."""
        t = status.totals
        eta = status.eta()
        return (
            f"[matrixhpc] {int(t.get('done', 0))}/{self.total} tasks"
            f"  failed={int(t.get('failed', 0))}"
            f"  bad_rows={int(t.get('row_errors', 0))}  turns={int(t.get('steps', 0))}"
            f"  tokens={int(t.get('tokens_out', 0))} ({t.get('tokens_per_s', 0):.0f} tok/s)"
            f"  eta={'-' if eta is None else f'{eta:.0f}s'}"
        )

    def close(self) -> None:
        try:
            self.bar.close()
        except OSError:
            redirect(sys.stderr)
