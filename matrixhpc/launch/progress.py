"""Progress output for a run: a tqdm bar on a terminal, a periodic line otherwise (CI, logs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tqdm import tqdm

from matrixhpc.status import RunStatus, read_status

LINE_INTERVAL = 10.0


class Progress:
    def __init__(self, run_dir: Path, total: int) -> None:
        self.run_dir = run_dir
        self.total = total
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, unit="task", dynamic_ncols=True, disable=not self.tty)
        self._last_line = 0.0

    def update(self, final: bool = False) -> RunStatus:
        status = read_status(self.run_dir)
        t = status.totals
        done = int(t.get("done", 0))
        if self.tty:
            self.bar.n = done
            self.bar.set_postfix(
                failed=int(t.get("failed", 0)),
                bad_rows=int(t.get("row_errors", 0)),
                tok_s=f"{t.get('tokens_per_s', 0):.0f}",
                refresh=False,
            )
            self.bar.refresh()
        elif final or time.monotonic() - self._last_line >= LINE_INTERVAL:
            self._last_line = time.monotonic()
            eta = status.eta
            print(
                f"[matrixhpc] {done}/{self.total} tasks  failed={int(t.get('failed', 0))}"
                f"  bad_rows={int(t.get('row_errors', 0))}  {t.get('tokens_per_s', 0):.0f} tok/s"
                f"  eta={'-' if eta is None else f'{eta:.0f}s'}",
                file=sys.stderr,
                flush=True,
            )
        return status

    def close(self) -> None:
        self.bar.close()
