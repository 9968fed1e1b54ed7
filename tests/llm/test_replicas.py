"""Replica sources: the file registry view and the static mapping."""

from __future__ import annotations

import time
from pathlib import Path

from matrixhpc.llm.replicas import RegistryReplicaSource, StaticReplicaSource
from matrixhpc.llm.types import ReplicaInfo
from matrixhpc.registry import Registry


def _registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "reg", scan_interval=0.0)


def test_reads_ready_entries_sorted_with_key_and_cap(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("  sk-abc \n")
    reg = _registry(tmp_path)
    reg.register("llm/svc", "r1", {"url": "http://h1:8000/v1/", "model": "m", "state": "ready"})
    reg.register(
        "llm/svc",
        "r0",
        {
            "url": "http://h0:8000/v1",
            "model": "m",
            "api_key_file": str(key_file),
            "max_concurrency": 16,
        },
    )
    reg.register("llm/svc", "r2", {"url": "http://h2:8000/v1", "model": "m", "state": "starting"})
    reg.register("llm/other", "x", {"url": "http://hx:8000/v1", "model": "m"})

    got = RegistryReplicaSource(reg).replicas("svc")

    assert got == [
        ReplicaInfo("r0", "http://h0:8000/v1", "m", api_key="sk-abc", max_concurrency=16),
        ReplicaInfo("r1", "http://h1:8000/v1", "m"),
    ]


def test_only_an_entry_that_says_request_metadata_true_gets_it(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    for name, flag in (("a", True), ("b", "yes"), ("c", None)):
        entry = {"url": f"http://{name}/v1", "model": "m", "request_metadata": flag}
        reg.register("llm/svc", name, entry)
    got = RegistryReplicaSource(reg).replicas("svc")
    assert [(r.name, r.request_metadata) for r in got] == [("a", True), ("b", False), ("c", False)]


def test_state_change_and_expiry_are_followed(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    source = RegistryReplicaSource(reg, cache_seconds=0.0)
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m", "state": "starting"})
    assert source.replicas("svc") == []
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m", "state": "ready"})
    assert [r.name for r in source.replicas("svc")] == ["r0"]
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m"}, ttl=0.001)
    time.sleep(0.01)  # a heartbeat older than its ttl is a dead replica
    assert source.replicas("svc") == []
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m"})
    assert [r.name for r in source.replicas("svc")] == ["r0"]
    reg.deregister("llm/svc", "r0")
    assert source.replicas("svc") == []


def test_unchanged_entries_return_the_same_objects(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m"})
    source = RegistryReplicaSource(reg, cache_seconds=0.0)
    first = source.replicas("svc")
    reg.register("llm/svc", "r0", {"url": "http://h0/v1", "model": "m"})  # heartbeat only
    assert source.replicas("svc") is first
    reg.register("llm/svc", "r1", {"url": "http://h1/v1", "model": "m"})
    second = source.replicas("svc")
    assert [r.name for r in second] == ["r0", "r1"]
    assert second[0] is first[0]


def test_api_key_is_read_once_per_path(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("old\n")
    reg = _registry(tmp_path)
    entry = {"url": "http://h0/v1", "model": "m", "api_key_file": str(key_file)}
    reg.register("llm/svc", "r0", entry)
    reg.register("llm/svc", "r1", {**entry, "url": "http://h1/v1"})
    source = RegistryReplicaSource(reg, cache_seconds=0.0)
    assert [r.api_key for r in source.replicas("svc")] == ["old", "old"]
    key_file.write_text("new\n")
    assert [r.api_key for r in source.replicas("svc")] == ["old", "old"]


def test_unreadable_key_file_hides_the_replica(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register(
        "llm/svc",
        "r0",
        {"url": "http://h0/v1", "model": "m", "api_key_file": str(tmp_path / "missing")},
    )
    reg.register("llm/svc", "r1", {"url": "http://h1/v1", "model": "m"})
    source = RegistryReplicaSource(reg, cache_seconds=0.0)
    assert [r.name for r in source.replicas("svc")] == ["r1"]
    (tmp_path / "missing").write_text("late-key")
    assert [r.api_key for r in source.replicas("svc")] == ["late-key", None]


def test_malformed_entries_are_skipped(tmp_path: Path) -> None:
    reg = _registry(tmp_path)
    reg.register("llm/svc", "nourl", {"model": "m"})
    reg.register("llm/svc", "bad", {"url": "http://h/v1", "model": "m", "max_concurrency": "x"})
    got = RegistryReplicaSource(reg).replicas("svc")
    assert got == [ReplicaInfo("bad", "http://h/v1", "m", max_concurrency=None)]


def test_static_source() -> None:
    a = ReplicaInfo("a", "http://a/v1", "m")
    source = StaticReplicaSource({"svc": [a]})
    assert source.replicas("svc") == [a]
    assert source.replicas("nope") == []
    source.set("svc", [])
    assert source.replicas("svc") == []
