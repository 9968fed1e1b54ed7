"""The launcher's output survives its reader: a closed pipe moves it to the run's log."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# writes a line, waits for the test to close the pipe, then writes on: with the pipe closed
# the second write fails (EPIPE), and must land in the log instead of ending the program
PROGRAM = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from matrixhpc.launch.console import say, use_log

    use_log(Path(sys.argv[1]))
    say("first")
    sys.stdin.readline()  # the reader has gone
    for i in range(3):
        say(f"after {i}")
    print("survived", file=open(sys.argv[2], "w"))
    """
)


def test_messages_move_to_the_log_when_the_pipe_closes(tmp_path: Path) -> None:
    log, marker = tmp_path / "logs" / "launcher.log", tmp_path / "survived"
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(log), str(marker)],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert proc.stdin is not None
    assert proc.stderr.readline() == "first\n"
    proc.stderr.close()  # `| head -1`
    proc.stdin.close()
    assert proc.wait(30) == 0  # not 1 (BrokenPipeError), not 120 (failed final flush)
    assert marker.read_text() == "survived\n"
    lines = log.read_text().splitlines()
    assert lines == [
        "[matrixhpc] the terminal or pipe closed: messages continue here",
        "after 0",
        "after 1",
        "after 2",
    ]
