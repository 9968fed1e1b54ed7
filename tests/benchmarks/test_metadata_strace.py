"""The strace side of benchmarks.metadata_strace: which lines count, as what, where."""

from __future__ import annotations

from pathlib import Path

from benchmarks.metadata_strace import classify, count

ROOT = "/scratch/run"
LINES = {
    # a registry scan: a listing of the directory (scandir opens it with O_DIRECTORY)
    f'123 openat(AT_FDCWD</x>, "{ROOT}/registry/workers", O_RDONLY|O_NONBLOCK|O_CLOEXEC|'
    "O_DIRECTORY) = 5</scratch/run/registry/workers>": ("registry", "getdents"),
    # reading an entry
    f'123 openat(AT_FDCWD</x>, "{ROOT}/registry/workers/w001.json", O_RDONLY|O_CLOEXEC) = 6': (
        "registry",
        "open",
    ),
    # the stat of a directory (a scan of an unchanged one)
    f'124 newfstatat(AT_FDCWD</x>, "{ROOT}/status", {{st_mode=S_IFDIR|0700}}, 0) = 0': (
        "status",
        "stat",
    ),
    # Python's open() fstat's its own fd: not a path lookup
    '124 newfstatat(6</scratch/run/status/w000.json>, "", {st_mode=S_IFREG}, '
    "AT_EMPTY_PATH) = 0": None,
    # an atomic write: rename of the temp file
    f'125 rename("{ROOT}/status/.w000.json.1.ab.tmp", "{ROOT}/status/w000.json") = 0': (
        "status",
        "rename",
    ),
    # a heartbeat: utime of the entry; and the mtime of a temp file set through its fd
    f'125 utimensat(AT_FDCWD</x>, "{ROOT}/registry/workers/w000.json", [..]) = 0': (
        "registry",
        "utime",
    ),
    f"125 utimensat(7<{ROOT}/registry/llm/llm/.r0.json.tmp>, NULL, [..], 0) = 0": (
        "registry",
        "utime",
    ),
    # a shard index, the launcher's run.json
    f'126 rename("{ROOT}/output/.index/.w0.json.tmp", "{ROOT}/output/.index/w0.json") = 0': (
        "index",
        "rename",
    ),
    f'127 openat(AT_FDCWD</x>, "{ROOT}/run.json", O_RDONLY|O_CLOEXEC) = 3': ("run.json", "open"),
    # not counted: the journal, output shards, logs, paths elsewhere, resumed halves
    f'128 openat(AT_FDCWD</x>, "{ROOT}/journal/w000/seg-1.log", O_RDWR|O_CREAT) = 9': None,
    f'128 openat(AT_FDCWD</x>, "{ROOT}/output/part-w000-00001.jsonl", O_WRONLY) = 9': None,
    '128 openat(AT_FDCWD</x>, "/usr/lib/python3.11/json/__init__.py", O_RDONLY) = 3': None,
    "128 <... openat resumed>) = 3": None,
}


def test_each_kind_of_line_is_classified() -> None:
    for line, expected in LINES.items():
        assert classify(line, ROOT) == expected, line


def test_a_trace_file_is_counted(tmp_path: Path) -> None:
    trace = tmp_path / "trace.txt"
    trace.write_text("\n".join(LINES) + "\n")
    counts = count(trace, ROOT)
    assert counts[("registry", "utime")] == 2
    assert sum(counts.values()) == sum(1 for v in LINES.values() if v is not None)
