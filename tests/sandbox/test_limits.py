import os

import pytest

from matrixhpc.sandbox.limits import parse_size, recognise, rlimit_prefix, user_processes
from matrixhpc.sandbox.types import Limits


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * 2**20),
        ("1G", 2**30),
        ("1GiB", 2**30),
        ("2k", 2048),
        (4096, 4096),
        ("1.5G", 3 * 2**29),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "lots", "-1G", 0, True, "1Q"])
def test_bad_sizes_say_why(bad: str | int) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)


def test_limit_hits_are_recognised() -> None:
    limits = Limits()
    assert recognise(limits, "SIGTERM", True, "") == "wall_s"
    assert recognise(limits, None, False, "Traceback...\nMemoryError\n") == "memory"
    assert recognise(limits, "SIGKILL", False, "") == "memory"  # the OOM killer
    assert recognise(limits, None, False, "BlockingIOError: [Errno 11]") == "pids"
    assert recognise(limits, None, False, "NameError: x") is None
    assert recognise(Limits(memory=None, pids=None), "SIGKILL", False, "MemoryError") is None


def test_prlimit_counts_the_users_processes_when_the_uid_is_shared() -> None:
    own = rlimit_prefix(Limits(memory=1000, pids=10), own_uid=True)
    assert own == ["prlimit", "--as=1000", "--nproc=10", "--"]
    shared = rlimit_prefix(Limits(memory=None, pids=10), own_uid=False)
    nproc = int(shared[1].removeprefix("--nproc="))
    assert nproc >= 10 + 1  # this test's own process at least
    assert user_processes(os.getuid()) >= 1
    assert rlimit_prefix(Limits(memory=None, pids=None), own_uid=False) == []
