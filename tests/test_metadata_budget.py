"""The metadata budget (DESIGN.md, "Invariants and budgets"), by counting filesystem
calls (not by timing): what one worker costs per second in steady state, what waiting
for a missing role costs, and that nothing unchanged is written again."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from matrixhpc.build import full_reread
from matrixhpc.data.writers import ShardWriter
from matrixhpc.files import JsonDir
from matrixhpc.registry import Registry
from matrixhpc.runtime.peers import KIND, PeerDirectory
from matrixhpc.runtime.reporting import LoadGate, StatusFile
from matrixhpc.runtime.spec import WorkerSpec

KINDS = ("stat", "scandir", "replace", "utime", "unlink", "mkdir")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ops(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the metadata calls the code under test makes (pathlib goes through these)."""
    import builtins
    import io
    import os

    counts: Counter[str] = Counter()

    def wrap(owner: object, attr: str, kind: str) -> None:
        real = getattr(owner, attr)

        def counted(*args: object, **kwargs: object) -> object:
            counts[kind] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, attr, counted)

    for attr in KINDS:
        wrap(os, attr, attr)
    wrap(io, "open", "open")
    wrap(builtins, "open", "open")
    return counts


def _entry(active: int = 0) -> dict[str, object]:
    return {"address": "tcp://x:1", "roles": ["a"], "active": active, "state": "running"}


def test_unchanged_entry_is_not_rewritten_and_beats_are_a_utime_when_due(
    tmp_path: Path, ops: Counter[str]
) -> None:
    clock = Clock()
    reg = Registry(tmp_path, ttl=30.0, clock=clock)
    assert reg.publish(KIND, "w0", _entry()) == "write"
    inode = reg.path(KIND, "w0").stat().st_ino
    ops.clear()
    did = []
    for _ in range(60):  # a minute of one publish per second, nothing changing
        clock.now += 1.0
        did.append(reg.publish(KIND, "w0", _entry()))
    assert did.count("write") == 0
    assert did.count("beat") == 10  # every ttl / 5 = 6 s
    assert ops == Counter(utime=10)
    assert reg.path(KIND, "w0").stat().st_ino == inode  # same file: no directory change
    assert reg.publish(KIND, "w0", _entry(active=3)) == "write"  # a change is written


def test_a_heartbeat_in_the_mtime_keeps_an_entry_alive_for_other_readers(tmp_path: Path) -> None:
    clock = Clock()
    writer = Registry(tmp_path, ttl=30.0, clock=clock)
    reader = Registry(tmp_path, ttl=30.0, clock=clock, scan_interval=1.0)
    writer.publish(KIND, "w0", _entry())
    for _ in range(100):
        clock.now += 1.0
        writer.publish(KIND, "w0", _entry())
        assert "w0" in reader.entries(KIND)
    clock.now += 30.1  # the beats stop: it expires
    assert reader.entries(KIND) == {}


def test_a_scan_of_an_unchanged_directory_is_one_stat(tmp_path: Path, ops: Counter[str]) -> None:
    clock = Clock()
    for i in range(20):
        Registry(tmp_path, clock=clock).register(KIND, f"w{i}", _entry())
    files = JsonDir(tmp_path / KIND, racy=0.0)
    assert len(files.read()) == 20
    ops.clear()
    for _ in range(10):
        assert len(files.read()) == 20
    assert ops == Counter(stat=10)
    Registry(tmp_path, clock=clock).register(KIND, "w3", _entry(active=1))
    ops.clear()
    assert files.read()["w3"]["active"] == 1
    assert ops == Counter(stat=1, scandir=1, open=1)  # only the replaced entry is read


def test_one_worker_per_second_in_steady_state(tmp_path: Path, ops: Counter[str]) -> None:
    """A worker's round (Reporter.tick's file work) among 16 peers, a minute of it, with
    its load and done count changing every second: bounded per second."""
    clock = Clock()
    peers_reg = Registry(tmp_path / "registry", clock=clock)
    for i in range(1, 16):
        peers_reg.register(KIND, f"w{i}", _entry())
    spec = WorkerSpec("w0", 0, 16, "g", tmp_path, "-", load_interval=5.0)
    full = full_reread(16)  # every entry re-read this often (reused inodes)
    reg = Registry(tmp_path / "registry", clock=clock, scan_interval=1.0, full_every=full)
    peers = PeerDirectory(reg, "w0")
    status = StatusFile(spec)
    writer = ShardWriter(tmp_path / "output", "w0", 1000, durable=False)
    load = LoadGate(spec.load_interval)
    reg.publish(KIND, "w0", _entry())
    worker: Counter[str] = Counter()
    seconds = 60
    for second in range(seconds):
        clock.now += 1.0
        for i in range(1, 16):  # peers only beat (their content is unchanged)
            peers_reg.publish(KIND, f"w{i}", _entry())
        ops.clear()  # from here on, this worker's own calls
        peers.refresh()
        active = load.advertise((second % 7, 0), clock.now)
        reg.publish(KIND, "w0", _entry(active=active[0]))
        writer.write({"id": str(second), "status": "ok"})
        status.offer({"done": second, "updated": clock.now}, clock.now)
        if second % 5 == 0:
            writer.write_index(only_if_changed=True)
        worker.update(ops)
    per_second = sum(worker.values()) / seconds
    # status (open + rename while done changes), index and entry every 5 s, a stat per
    # scan plus a listing when the directory changed; the peers' entries read only
    # every `full` seconds
    assert per_second <= 6.0 + 16 / full, (per_second, worker)
    assert worker["open"] / seconds <= 2.0 + 16 / full, worker


@pytest.mark.asyncio
async def test_waiting_for_a_missing_role_scans_no_more_often_than_the_floor(
    tmp_path: Path,
) -> None:
    from matrixhpc.runtime.dispatch import PEER_POLL

    clock = Clock()
    reg = Registry(tmp_path, clock=clock, scan_interval=60.0, fresh_floor=1.0)
    scans = 0
    real = reg._scan

    def counting(kind: str) -> dict[str, dict[str, object]]:
        nonlocal scans
        scans += 1
        return real(kind)

    reg._scan = counting  # type: ignore[method-assign]
    peers = PeerDirectory(reg, "w0")
    # 200 tasks waiting for a role nobody hosts, each polling as Dispatcher does
    for _ in range(int(10 / PEER_POLL[0])):
        for _ in range(200):
            peers.refresh(fresh=True)
            assert peers.pick("gone") is None
        clock.now += PEER_POLL[0]
        await asyncio.sleep(0)
    assert scans <= 10 + 1  # 10 s of waiting: one scan per floor


def test_waiting_for_the_end_costs_a_stat_per_look_and_never_opens_a_file(
    tmp_path: Path, ops: Counter[str]
) -> None:
    """The end of the run: 50 workers declare themselves finished; a waiting one looks
    at the markers without reading a single file (N waiters no longer cost N**2 reads)."""
    clock = Clock()
    root = tmp_path / "registry"
    waiter = PeerDirectory(Registry(root, clock=clock, fresh_floor=0.0), "w0")
    ops.clear()
    looks = 0
    for i in range(50):
        PeerDirectory(Registry(root, clock=clock), f"w{i}").declare_finished()
        clock.now += 1.0
        looks += 1
        assert waiter.finished(50) == (i == 49)
    assert ops["open"] == 0  # (a marker is made with os.open, which is not counted here)
    assert ops["scandir"] <= looks  # a listing only when a marker appeared
    ops.clear()
    for _ in range(10):  # nothing changes any more (racy window over: no listing)
        clock.now += 1.0
        waiter.finished(50)
    assert ops["open"] == 0
    assert ops["stat"] == 10


def test_a_restarted_worker_starts_from_the_snapshot_and_reads_only_what_changed(
    tmp_path: Path, ops: Counter[str]
) -> None:
    """A requeued worker would read every entry once (N reads, a burst when many
    restart); from worker 0's snapshot it reads the snapshot and the replaced entries."""
    clock = Clock()
    root = tmp_path / "registry"
    writers = [Registry(root, clock=clock) for _ in range(40)]
    for i, reg in enumerate(writers):
        reg.register(KIND, f"w{i}", _entry())
    w0 = Registry(root, clock=clock, full_every=3600.0)
    assert len(w0.entries(KIND)) == 40
    assert w0.save_snapshot(KIND)
    assert not w0.save_snapshot(KIND)  # nothing new: not written again
    writers[7].register(KIND, "w7", _entry(active=5))  # replaced after the snapshot
    clock.now += 10.0
    ops.clear()
    restarted = Registry(root, clock=clock, full_every=3600.0)
    seen = restarted.entries(KIND)
    assert len(seen) == 40
    assert seen["w7"]["active"] == 5
    assert ops["open"] == 2  # the snapshot and w7: not 40 entries


def test_a_stale_or_foreign_snapshot_is_not_used(tmp_path: Path) -> None:
    clock = Clock()
    root = tmp_path / "registry"
    Registry(root, clock=clock).register(KIND, "w1", _entry())
    w0 = Registry(root, clock=clock, full_every=5.0)
    w0.entries(KIND)
    w0.save_snapshot(KIND)
    snapshot = next((root / "_snapshots").iterdir())
    clock.now += 3600.0  # far older than it may be trusted
    Registry(root, clock=clock).register(KIND, "w1", _entry(active=9))
    assert Registry(root, clock=clock).entries(KIND)["w1"]["active"] == 9
    snapshot.write_text("[1, 2")  # damaged: ignored, everything is read
    assert Registry(root, clock=clock).entries(KIND)["w1"]["active"] == 9


def test_the_safety_net_rereads_are_spread_not_all_at_once(
    tmp_path: Path, ops: Counter[str]
) -> None:
    """Every entry is re-read every full_every seconds (reused inode numbers), but not in
    one go: the workers of a Slurm array start together, and N of them each re-reading N
    entries in the same minute would be a burst of N**2."""
    clock = Clock()
    for i in range(200):
        Registry(tmp_path, clock=clock).register(KIND, f"w{i}", _entry())
    files = JsonDir(tmp_path / KIND, racy=0.0, full_every=100.0, clock=clock)
    assert len(files.read()) == 200
    per_look = []
    for _ in range(200):  # two periods, a look per second
        clock.now += 1.0
        ops.clear()
        files.read()
        per_look.append(ops["open"])
    # each entry once in its first (random) period, then once in every period after
    assert 300 <= sum(per_look) <= 400, sum(per_look)
    assert max(per_look) <= 15  # ~2 per second, never the whole directory
