"""Stop signals: the first starts a clean shutdown, later ones never cut it short."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from matrixhpc.lifecycle import run_until_signal

# A process shaped like a worker: main() runs until stopped; its cleanup (the journal's
# close) takes a moment — here until the test lets it go by creating a file — and then
# writes its result. Exit code 75 means "stopped, resumable", as `matrixhpc worker` does.
PROGRAM = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from matrixhpc.lifecycle import run_until_signal

    go, closed = Path(sys.argv[1]), Path(sys.argv[2])

    async def main() -> str:
        try:
            print("ready", flush=True)
            await asyncio.Event().wait()
        finally:
            print("cleaning up", flush=True)
            while not go.exists():
                await asyncio.sleep(0.01)
            closed.write_text("journal closed")
        return "finished"

    result = asyncio.run(run_until_signal(main()))
    sys.exit(0 if result == "finished" else 75)
    """
)


@pytest.fixture
def program(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    go, closed = tmp_path / "go", tmp_path / "closed"
    proc = subprocess.Popen(
        [sys.executable, "-c", PROGRAM, str(go), str(closed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield proc, go, closed
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _expect(stream: object, text: str) -> None:
    assert hasattr(stream, "readline")
    line = stream.readline()
    while line and text not in line:
        line = stream.readline()
    assert text in line, f"never saw {text!r}"


@pytest.mark.parametrize(
    "signals",
    [
        [signal.SIGUSR2, signal.SIGTERM],  # Slurm: the warning, then the end of the job
        [signal.SIGINT, signal.SIGINT, signal.SIGTERM],  # Ctrl-C twice, then a kill
    ],
    ids=["slurm", "ctrl-c"],
)
def test_a_second_signal_does_not_cut_the_shutdown_short(
    program: tuple[subprocess.Popen[str], Path, Path], signals: list[signal.Signals]
) -> None:
    proc, go, closed = program
    _expect(proc.stdout, "ready")
    proc.send_signal(signals[0])
    _expect(proc.stdout, "cleaning up")
    for later in signals[1:]:
        proc.send_signal(later)
        _expect(proc.stderr, f"{later.name} received: already stopping")
    go.touch()
    assert proc.wait(30) == 75
    assert closed.read_text() == "journal closed"


def test_the_result_when_no_signal_comes() -> None:
    async def main() -> int:
        return 7

    assert asyncio.run(run_until_signal(main())) == 7


def test_a_cancellation_that_is_not_a_signal_propagates() -> None:
    async def outer() -> None:
        inner = asyncio.ensure_future(run_until_signal(asyncio.Event().wait()))
        await asyncio.sleep(0)
        inner.cancel()
        await inner

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(outer())
