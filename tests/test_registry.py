"""The file registry on a real directory: entries, TTLs, cached scans, heartbeats.

Time is a hand-moved clock (the registry's injectable ``clock``), so TTLs and scan
intervals pass instantly and every test sees the same order of events."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.registry import Registry


class Clock:
    """Wall time that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _reg(tmp_path: Path, clock: Clock | None = None, **kw: float) -> Registry:
    return Registry(tmp_path / "registry", clock=clock or Clock(), **kw)


def test_register_then_entries(tmp_path: Path) -> None:
    reg = _reg(tmp_path, Clock(1234.5))
    reg.register("workers", "w0", {"address": "tcp://127.0.0.1:5000", "roles": ["a"]})
    entries = reg.entries("workers", fresh=True)
    assert list(entries) == ["w0"]
    entry = entries["w0"]
    assert entry["address"] == "tcp://127.0.0.1:5000"
    assert entry["roles"] == ["a"]
    assert entry["name"] == "w0"
    assert entry["ttl"] == reg.ttl
    assert entry["heartbeat"] == 1234.5
    assert entry["pid"] == os.getpid()
    assert isinstance(entry["host"], str)
    assert entry["host"]
    assert reg.path("workers", "w0") == tmp_path / "registry" / "workers" / "w0.json"
    assert reg.path("workers", "w0").is_file()


def test_register_keeps_given_host_and_pid(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.register("llm/svc", "r0", {"host": "node7", "pid": 42, "url": "http://x/v1"})
    entry = reg.entries("llm/svc", fresh=True)["r0"]
    assert (entry["host"], entry["pid"], entry["url"]) == ("node7", 42, "http://x/v1")
    assert (tmp_path / "registry" / "llm" / "svc" / "r0.json").is_file()


def test_register_does_not_mutate_the_callers_dict(tmp_path: Path) -> None:
    data = {"a": 1}
    _reg(tmp_path).register("k", "n", data)
    assert data == {"a": 1}


def test_kinds_are_separate_and_missing_kind_is_empty(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.register("workers", "w0", {})
    reg.register("llm/a", "r0", {})
    assert set(reg.entries("workers", fresh=True)) == {"w0"}
    assert set(reg.entries("llm/a", fresh=True)) == {"r0"}
    assert reg.entries("llm/b", fresh=True) == {}
    assert reg.entries("nothing", fresh=True) == {}


def test_deregister_removes_and_is_idempotent(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.register("workers", "w0", {})
    reg.register("workers", "w1", {})
    reg.deregister("workers", "w0")
    reg.deregister("workers", "w0")  # already gone: no error
    reg.deregister("workers", "never")
    assert set(reg.entries("workers", fresh=True)) == {"w1"}


def test_refresh_overwrites(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.register("workers", "w0", {"active": 1})
    reg.register("workers", "w0", {"active": 9})
    assert reg.entries("workers", fresh=True)["w0"]["active"] == 9


def test_entry_expires_after_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=0.0)
    reg.register("workers", "short", {}, ttl=15)
    reg.register("workers", "long", {}, ttl=60)
    clock.advance(15)
    assert set(reg.entries("workers")) == {"short", "long"}  # alive up to its TTL
    clock.advance(0.01)
    assert set(reg.entries("workers")) == {"long"}
    # the file is still there: expiry is a reader's judgement, not a deletion
    assert reg.path("workers", "short").is_file()


def test_default_ttl_comes_from_the_registry(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, ttl=15, scan_interval=0.0)
    reg.register("workers", "w0", {})
    clock.advance(14)
    assert set(reg.entries("workers")) == {"w0"}
    clock.advance(2)
    assert reg.entries("workers") == {}


def test_expiry_applies_even_to_a_cached_scan(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=60.0)
    reg.register("workers", "w0", {}, ttl=15)
    assert set(reg.entries("workers")) == {"w0"}
    clock.advance(30)
    assert reg.entries("workers") == {}  # no rescan, but the cached entry is dead


def test_permanent_entry_never_expires(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, ttl=5, scan_interval=0.0)
    reg.register("workers", "done", {"origin_done": True}, ttl=None)
    reg.register("workers", "alive", {})
    clock.advance(10**6)
    entries = reg.entries("workers")
    assert set(entries) == {"done"}
    assert entries["done"]["ttl"] is None


def test_old_heartbeat_written_by_someone_else_is_dead(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock)
    atomic_write_json(reg.path("workers", "stale"), {"heartbeat": clock() - 100, "ttl": 30})
    atomic_write_json(reg.path("workers", "fresh"), {"heartbeat": clock(), "ttl": 30})
    assert set(reg.entries("workers", fresh=True)) == {"fresh"}


def test_cached_scan_hides_new_files_until_the_interval_passes(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=60.0)
    reg.register("workers", "w0", {})
    assert set(reg.entries("workers")) == {"w0"}
    other = _reg(tmp_path, clock)  # another process writes a new entry
    other.register("workers", "w1", {})
    assert set(reg.entries("workers")) == {"w0"}  # served from the cached scan
    clock.advance(1.0)
    assert set(reg.entries("workers", fresh=True)) == {"w0", "w1"}


def test_fresh_scans_share_one_listing_per_floor(tmp_path: Path) -> None:
    """Many waiting tasks each asking for a fresh view cost one scan per floor, not one
    each (a metadata storm on Lustre)."""
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=60.0)
    assert reg.fresh_floor == 1.0
    reg.register("workers", "w0", {})
    scans = 0
    real_scan = reg._scan

    def counting(kind: str) -> dict[str, dict[str, object]]:
        nonlocal scans
        scans += 1
        return real_scan(kind)

    reg._scan = counting  # type: ignore[method-assign]
    for _ in range(100):
        reg.entries("workers", fresh=True)
        clock.advance(0.05)  # 100 callers over 5 s
    assert scans == 5


def test_cached_scan_refreshes_after_the_interval(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=20.0)
    assert reg.entries("workers") == {}
    _reg(tmp_path, clock).register("workers", "late", {})
    clock.advance(14.9)  # < interval * 0.75 (the least jitter can leave)
    assert reg.entries("workers") == {}
    clock.advance(10.2)  # > interval * 1.25 (the most jitter can add)
    assert set(reg.entries("workers")) == {"late"}


def test_scans_are_cached_per_kind(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, scan_interval=60.0)
    assert reg.entries("a") == {}
    _reg(tmp_path, clock).register("b", "x", {})
    assert set(reg.entries("b")) == {"x"}  # first look at kind b scans


def test_garbage_and_partial_files_are_ignored(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.register("workers", "good", {"address": "a"})
    d = tmp_path / "registry" / "workers"
    (d / "half.json").write_text('{"name": "half", "heartbeat": ')
    (d / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "empty.json").write_text("")
    (d / ".good.json.123.abcd.tmp").write_text("{}")  # a writer's temp file
    (d / "notes.txt").write_text("{}")
    assert set(reg.entries("workers", fresh=True)) == {"good"}


async def _turns(count: int) -> None:
    """Let the loop's other tasks take ``count`` steps: a heartbeat with interval 0
    beats once a step, so beats need no wall-clock wait."""
    for _ in range(count):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_heartbeat_refreshes_then_cancels(tmp_path: Path) -> None:
    clock = Clock()
    reg = _reg(tmp_path, clock, ttl=30)
    calls = 0

    def data() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"beat": calls}

    beat = asyncio.create_task(reg.heartbeat("workers", "w0", data, interval=0))
    await _turns(1)
    first = read_json(reg.path("workers", "w0"))
    assert first is not None
    assert (first["beat"], first["heartbeat"]) == (1, 1000.0)
    clock.advance(100)  # far past the TTL: only the refreshes keep it alive
    await _turns(3)
    later = read_json(reg.path("workers", "w0"))
    assert later is not None
    assert later["beat"] >= 2
    assert later["heartbeat"] == 1100.0
    assert "w0" in reg.entries("workers", fresh=True)

    beat.cancel()
    with pytest.raises(asyncio.CancelledError):
        await beat
    stopped_at = calls
    await _turns(3)
    assert calls == stopped_at
    clock.advance(30.01)
    assert reg.entries("workers", fresh=True) == {}  # it expires once the beats stop


@pytest.mark.asyncio
async def test_heartbeat_survives_a_failed_write(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    calls = 0

    def data() -> dict[str, int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk hiccup")
        return {"beat": calls}

    beat = asyncio.create_task(reg.heartbeat("workers", "w0", data, interval=0))
    await _turns(3)
    beat.cancel()
    with pytest.raises(asyncio.CancelledError):
        await beat
    entry = read_json(reg.path("workers", "w0"))
    assert entry is not None
    assert entry["beat"] >= 2


def test_a_process_sees_its_own_writes_without_a_scan(tmp_path: Path) -> None:
    reg = _reg(tmp_path, scan_interval=60.0)
    reg.register("workers", "w0", {"state": "running"})
    assert reg.entries("workers")["w0"]["state"] == "running"  # the first scan
    reg.register("workers", "w0", {"state": "done"})
    reg.register("workers", "w1", {"state": "running"})
    entries = reg.entries("workers")  # cached scan, no new listing
    assert entries["w0"]["state"] == "done"
    assert set(entries) == {"w0", "w1"}
    reg.deregister("workers", "w1")
    assert set(reg.entries("workers")) == {"w0"}
