"""The launcher's messages to the user, which must never be what kills a run.

``matrixhpc run ... 2>&1 | head`` closes the pipe after a few lines; an ssh
session that drops takes the terminal with it. Writing to the dead stream then
fails (EPIPE: Python ignores SIGPIPE, so it is a BrokenPipeError; EIO for a
lost terminal), and a launcher that died of that would leave its LLM servers
and workers running with nobody to stop them. So the launcher keeps supervising
and its output goes on in ``RUN_DIR/logs/launcher.log``: the dead descriptor
is replaced by that file (by ``dup2``), which also covers every other writer
to it — the progress bar, warnings, a traceback — and Python's final flush.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TextIO

_fallback: Path | None = None


def use_log(path: Path | None) -> None:
    """Where the output goes once the terminal or pipe is gone (default: nowhere)."""
    global _fallback
    _fallback = path


def say(message: str, stream: TextIO | None = None) -> None:
    """Print one message (stderr by default); a closed stream is replaced, never fatal."""
    out = stream if stream is not None else sys.stderr
    try:
        print(message, file=out, flush=True)
    except OSError:
        redirect(out)
        # sys.stderr writes through, so the failed message was not kept: write it again;
        # a stream with no descriptor to replace loses the message, never the run
        with contextlib.suppress(OSError):
            print(message, file=out, flush=True)


NOTE = b"[matrixhpc] the terminal or pipe closed: messages continue here\n"


def redirect(stream: TextIO) -> None:
    """Point ``stream``'s descriptor at the log file (or /dev/null) after its reader left."""
    target = str(_fallback) if _fallback is not None else os.devnull
    if _fallback is not None:
        _fallback.parent.mkdir(parents=True, exist_ok=True)
    try:
        broken = stream.fileno()
    except (OSError, ValueError):
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, NOTE)
        os.dup2(fd, broken)
    finally:
        os.close(fd)
