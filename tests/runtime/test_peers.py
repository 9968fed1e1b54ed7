"""PeerDirectory over a real file registry."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from matrixhpc.registry import Registry
from matrixhpc.runtime.peers import KIND, PeerDirectory


def _worker(reg: Registry, name: str, roles: list[str], **kw: Any) -> None:
    ttl = kw.pop("ttl", -1.0)
    entry: dict[str, Any] = {
        "address": f"tcp://127.0.0.1:{5000 + int(name[1:])}",
        "roles": roles,
        "active": 0,
        "queued": 0,
        "max_active": 100,
        "state": "running",
        "origin_done": False,
    }
    entry.update(kw)
    reg.register(KIND, name, entry, ttl=ttl)


def _dir(tmp_path: Path, me: str = "w0") -> tuple[Registry, PeerDirectory]:
    reg = Registry(tmp_path / "registry", scan_interval=60.0, fresh_floor=0.0)
    return reg, PeerDirectory(reg, me)


def test_pick_least_loaded(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"], active=50)
    _worker(reg, "w2", ["a"], active=10, queued=5)
    _worker(reg, "w3", ["a"], active=30)
    peers.refresh(fresh=True)
    assert peers.pick("a") == ("w2", "tcp://127.0.0.1:5002")


def test_load_is_relative_to_capacity(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"], active=10, max_active=10)  # full
    _worker(reg, "w2", ["a"], active=50, max_active=1000)  # 5 %
    peers.refresh(fresh=True)
    assert peers.pick("a") == ("w2", "tcp://127.0.0.1:5002")


def test_pick_only_peers_hosting_the_role(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"])
    _worker(reg, "w2", ["b"], active=99)
    peers.refresh(fresh=True)
    assert peers.pick("b") == ("w2", "tcp://127.0.0.1:5002")
    assert peers.pick("c") is None


def test_burst_spreads_evenly_across_equal_peers(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    for name in ("w1", "w2", "w3"):
        _worker(reg, name, ["a"], active=5)
    peers.refresh(fresh=True)
    picks = Counter(peers.pick("a") for _ in range(30))
    assert {pick[0] for pick in picks if pick} == {"w1", "w2", "w3"}
    assert sorted(picks.values()) == [10, 10, 10]


def test_burst_fills_the_idle_peer_first(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"], active=0)
    _worker(reg, "w2", ["a"], active=4)
    peers.refresh(fresh=True)
    firsts = [peers.pick("a") for _ in range(4)]
    assert [p[0] for p in firsts if p] == ["w1"] * 4
    rest = Counter(p[0] for p in (peers.pick("a") for _ in range(10)) if p)
    assert rest == {"w1": 5, "w2": 5}


def test_sent_counter_survives_a_cached_refresh_and_resets_on_a_new_heartbeat(
    tmp_path: Path,
) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"])
    _worker(reg, "w2", ["a"])
    peers.refresh(fresh=True)
    for _ in range(3):
        peers.pick("a")
    assert sorted(peers._sent.values()) == [1, 2]
    peers.refresh()  # cached scan: same heartbeats, counters kept
    assert sorted(peers._sent.values()) == [1, 2]
    peers.pick("a")  # goes to the one we sent less
    assert peers._sent == {"w1": 2, "w2": 2}

    time.sleep(0.01)
    _worker(reg, "w1", ["a"], active=0)  # w1 advertises a new load (new heartbeat)
    peers.refresh(fresh=True)
    assert peers._sent["w1"] == 0  # its advertised load already includes what we sent
    assert peers._sent["w2"] == 2
    assert peers.pick("a") == ("w1", "tcp://127.0.0.1:5001")


def test_pick_skips_self_and_exited(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path, me="w0")
    _worker(reg, "w0", ["a"], active=0)  # me: idlest, but never picked
    _worker(reg, "w1", ["a"], active=0, state="exited")
    _worker(reg, "w2", ["a"], active=90)
    peers.refresh(fresh=True)
    assert {peers.pick("a") for _ in range(5)} == {("w2", "tcp://127.0.0.1:5002")}


def test_pick_none_when_only_self_or_exited(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path, me="w0")
    _worker(reg, "w0", ["a"])
    _worker(reg, "w1", ["a"], state="exited")
    peers.refresh(fresh=True)
    assert peers.pick("a") is None


def test_pick_before_refresh_knows_nobody(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"])
    assert peers.pick("a") is None
    peers.refresh(fresh=True)
    assert peers.pick("a") is not None


def test_expired_peers_disappear(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry", ttl=0.1, scan_interval=0.0)
    peers = PeerDirectory(reg, "w0")
    _worker(reg, "w1", ["a"])
    peers.refresh()
    assert peers.hosts("a")
    time.sleep(0.2)
    peers.refresh()
    assert not peers.hosts("a")
    assert peers.pick("a") is None
    assert peers.address_of("w1") is None


def test_hosts(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path, me="w0")
    _worker(reg, "w0", ["a", "b"])
    _worker(reg, "w1", ["b"])
    _worker(reg, "w2", ["c"], state="exited")
    peers.refresh(fresh=True)
    assert not peers.hosts("a")  # only I host it
    assert peers.hosts("b")
    assert not peers.hosts("c")  # only an exited worker does
    assert not peers.hosts("z")


def test_address_of(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"])
    peers.refresh(fresh=True)
    assert peers.address_of("w1") == "tcp://127.0.0.1:5001"
    assert peers.address_of("w9") is None


def test_finished_counts_the_markers_of_every_process(tmp_path: Path) -> None:
    """Each worker declares itself finished with a marker; any reader counts them all,
    and a marker outlives its writer (no TTL), unlike the entry."""
    root = tmp_path / "registry"
    peers = PeerDirectory(Registry(root, fresh_floor=0.0), "w0")
    for name in ("w0", "w2"):
        PeerDirectory(Registry(root), name).declare_finished()
    assert peers.finished(2)
    assert not peers.finished(3)
    PeerDirectory(Registry(root), "w1").declare_finished()
    assert peers.finished(3)
    assert not peers.finished(4)


def test_exiting_marks_and_removes_the_entry(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    other = PeerDirectory(reg, "w1")
    _worker(reg, "w1", ["a"])
    other.declare_exited()
    peers.refresh(fresh=True)
    assert peers.address_of("w1") is None
    assert reg.marked("exited") == {"w1"}


def test_an_avoided_peer_is_picked_only_when_no_other_can(tmp_path: Path) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["a"], active=0)
    _worker(reg, "w2", ["a"], active=500)
    peers.refresh(fresh=True)
    peers.avoid("w1", 60.0)
    assert [peers.pick("a")[0] for _ in range(5)] == ["w2"] * 5  # type: ignore[index]
    reg.deregister(KIND, "w2")
    peers.refresh(fresh=True)
    assert peers.pick("a") == ("w1", "tcp://127.0.0.1:5001")  # the only one left


def test_the_peer_holding_the_tasks_sandbox_is_preferred_while_it_can_take_the_role(
    tmp_path: Path,
) -> None:
    reg, peers = _dir(tmp_path)
    _worker(reg, "w1", ["run"], active=90)  # holds the task's sandbox, though busier
    _worker(reg, "w2", ["run"], active=0)
    _worker(reg, "w3", ["llm"], active=0)
    peers.refresh(fresh=True)
    assert peers.pick("run", prefer="w1") == ("w1", "tcp://127.0.0.1:5001")
    assert peers.pick("run", prefer="w3") == ("w2", "tcp://127.0.0.1:5002")  # not its role
    assert peers.pick("run", prefer="w9") == ("w2", "tcp://127.0.0.1:5002")  # gone
    peers.avoid("w1", 60.0)
    assert peers.pick("run", prefer="w1") == ("w2", "tcp://127.0.0.1:5002")  # unanswered
