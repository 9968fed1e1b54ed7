"""A restarting origin reads back its own shards: ids, counts, torn tails, bad lines."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from matrixhpc.data.writers import INDEX_DIR, TORN_DIR, ShardWriter, recover_shards
from matrixhpc.task import Task


def _record(task_id: str, status: str = "ok", **kw: Any) -> dict[str, Any]:
    task = Task(id=task_id, seed=1, row=kw.pop("row", {"q": task_id}), origin="w0", status=status)
    for name, value in kw.items():
        setattr(task, name, value)
    return task.to_record()


def _write(out: Path, worker: str, statuses: list[str], shard_records: int = 2) -> ShardWriter:
    writer = ShardWriter(out, worker, shard_records=shard_records)
    for i, status in enumerate(statuses):
        writer.write(_record(f"{worker}-r{i}", status))
    writer.close()
    return writer


def test_ids_and_counts_from_the_shards(tmp_path: Path) -> None:
    writer = _write(tmp_path, "w0", ["ok", "failed", "ok", "ok", "failed"])
    _write(tmp_path, "w00", ["ok"])  # another worker's shards in the same directory
    _write(tmp_path, "w01", ["failed"])
    found = recover_shards(tmp_path, "w0")
    assert found.ids == {f"w0-r{i}" for i in range(5)}
    assert found.shards == writer.shards  # what the writer itself counted
    assert (found.count("ok"), found.count("failed"), found.count("records")) == (3, 2, 5)
    assert found.repaired == []


def test_no_shards(tmp_path: Path) -> None:
    found = recover_shards(tmp_path, "w0")
    assert found.ids == set()
    assert found.shards == []
    assert found.repaired == []
    assert found.count("ok") == 0


def test_ids_that_need_a_full_parse(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "w0", shard_records=10)
    odd = ['quo"te', "back\\slash", "ünï😀", "tab\there"]
    for task_id in odd:
        writer.write(_record(task_id, "failed"))
    writer.write({"status": "ok", "id": "not-first"})  # a record that does not start with id
    writer.close()
    found = recover_shards(tmp_path, "w0")
    assert found.ids == {*odd, "not-first"}
    assert (found.count("ok"), found.count("failed")) == (1, 4)


@pytest.mark.parametrize("torn", [b'{"id":"w0-r9","sta', b"{", b'{"id":"w0-r9"}'])
def test_a_torn_last_line_is_cut_and_saved(tmp_path: Path, torn: bytes) -> None:
    _write(tmp_path, "w0", ["ok", "failed", "ok"])
    last = tmp_path / "part-w0-00001.jsonl"
    good = last.read_bytes()
    with last.open("ab") as fh:
        fh.write(torn)  # a crash mid-write: no newline
    first = (tmp_path / "part-w0-00000.jsonl").read_bytes()

    found = recover_shards(tmp_path, "w0")
    assert found.ids == {"w0-r0", "w0-r1", "w0-r2"}  # the torn record is not "written"
    assert last.read_bytes() == good
    assert (tmp_path / "part-w0-00000.jsonl").read_bytes() == first
    saved = Path(TORN_DIR) / f"part-w0-00001.jsonl.{len(good)}"
    assert found.repaired == [
        {
            "file": last.name,
            "offset": len(good),
            "bytes": len(torn),
            "saved_as": str(saved),
            "reason": "torn tail",
        }
    ]
    assert (tmp_path / saved).read_bytes() == torn
    assert [s["records"] for s in found.shards] == [2, 1]
    again = recover_shards(tmp_path, "w0")  # repaired once: nothing more to do
    assert again.repaired == []
    assert again.ids == found.ids


def test_a_shard_that_is_only_a_torn_line(tmp_path: Path) -> None:
    (tmp_path / "part-w0-00000.jsonl").write_bytes(b'{"id":"x","st')
    found = recover_shards(tmp_path, "w0")
    assert found.ids == set()
    assert found.shards == [{"file": "part-w0-00000.jsonl", "records": 0, "ok": 0, "failed": 0}]
    assert found.repaired[0]["offset"] == 0
    assert (tmp_path / "part-w0-00000.jsonl").read_bytes() == b""


def test_a_writer_with_recovered_shards_starts_a_new_shard(tmp_path: Path) -> None:
    _write(tmp_path, "w0", ["ok", "ok", "failed"])
    before = {p.name: p.read_bytes() for p in tmp_path.glob("part-*.jsonl")}
    found = recover_shards(tmp_path, "w0")
    writer = ShardWriter(tmp_path, "w0", shard_records=2, recovered=found.shards)
    writer.write(_record("w0-r3"))
    writer.close()
    assert {p.name: p.read_bytes() for p in tmp_path.glob("part-*.jsonl") if p.name in before} == (
        before
    )  # the old shards are untouched, even the one with room left
    new = tmp_path / "part-w0-00002.jsonl"
    assert [json.loads(line)["id"] for line in new.read_text().splitlines()] == ["w0-r3"]
    index = json.loads((tmp_path / INDEX_DIR / "w0.json").read_text())["shards"]
    assert [(s["file"], s["records"]) for s in index] == [
        ("part-w0-00000.jsonl", 2),
        ("part-w0-00001.jsonl", 1),
        ("part-w0-00002.jsonl", 1),
    ]
    assert recover_shards(tmp_path, "w0").ids == {f"w0-r{i}" for i in range(4)}


def test_a_writer_never_reopens_an_existing_file(tmp_path: Path) -> None:
    _write(tmp_path, "w0", ["ok", "ok"])
    clash = tmp_path / "part-w0-00001.jsonl"
    clash.write_text('{"id":"someone else"}\n')
    writer = ShardWriter(tmp_path, "w0", shard_records=2, recovered=[{"file": "x", "records": 2}])
    with pytest.raises(FileExistsError):
        writer.write(_record("new"))  # opened with mode "x": refuses, never appends
    assert clash.read_text() == '{"id":"someone else"}\n'


def test_status_is_read_from_the_record_not_from_its_row(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "w0", shard_records=10)
    writer.write(_record("t1", "failed", row={"status": "ok", "q": "?"}, error="boom"))
    writer.write(_record("t2", "ok"))
    writer.close()
    found = recover_shards(tmp_path, "w0")
    assert found.shards == writer.shards
    assert (found.count("ok"), found.count("failed")) == (1, 1)


# ------------------------------------------------------------- bad lines in the middle

BAD_LINES = {
    # a record cut short, then the next one written on (the old reader took it for w0-x)
    "torn-prefix": b'{"id":"w0-x","status":"ok","row":{"q\n',
    # a block of NUL bytes inside a record (a node crash): starts and ends like a record
    "nul-block": b'{"id":"w0-x","status":"ok","row":\x00\x00\x00\x00}\n',
    "only-nuls": b"\x00" * 64 + b"\n",
    "not-json": b"this is not json\n",
    "not-an-object": b'["w0-x","ok"]\n',
    "id-not-a-string": b'{"id":7,"status":"ok"}\n',
    "no-id": b'{"status":"ok"}\n',
    "blank": b"\n",
    "bad-utf8": b'{"id":"w0-\xff","status":"ok"}\n',
}


def _with_bad_line(out: Path, bad: bytes, after: int) -> tuple[Path, list[bytes]]:
    """One shard of five records with ``bad`` inserted after line ``after``."""
    _write(out, "w0", ["ok", "failed", "ok", "ok", "failed"], shard_records=5)
    shard = out / "part-w0-00000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(b"".join(lines[:after]) + bad + b"".join(lines[after:]))
    return shard, lines


@pytest.mark.parametrize("after", [0, 2, 4])
@pytest.mark.parametrize("bad", list(BAD_LINES.values()), ids=list(BAD_LINES))
def test_an_invalid_line_before_valid_records_is_cut_out(
    tmp_path: Path, bad: bytes, after: int
) -> None:
    shard, lines = _with_bad_line(tmp_path, bad, after)
    offset = sum(len(line) for line in lines[:after])

    found = recover_shards(tmp_path, "w0")

    assert found.ids == {f"w0-r{i}" for i in range(5)}  # every valid record kept
    assert found.failed == {"w0-r1", "w0-r4"}
    assert shard.read_bytes() == b"".join(lines)  # exactly the valid records, in order
    assert found.shards == [
        {"file": shard.name, "records": 5, "ok": 3, "failed": 2, "errors": {"(no message)": 2}}
    ]
    saved = f"{TORN_DIR}/{shard.name}.{offset}"
    assert found.repaired == [
        {
            "file": shard.name,
            "offset": offset,
            "bytes": len(bad),
            "saved_as": saved,
            "reason": "invalid line",
        }
    ]
    assert (tmp_path / saved).read_bytes() == bad  # nothing is thrown away
    assert not list(tmp_path.glob(".*.tmp"))  # the rewrite left no temp file
    again = recover_shards(tmp_path, "w0")
    assert again.repaired == []
    assert again.ids == found.ids


def test_bad_lines_in_the_middle_and_a_torn_tail_together(tmp_path: Path) -> None:
    shard, lines = _with_bad_line(tmp_path, BAD_LINES["nul-block"], 1)
    with shard.open("ab") as fh:
        fh.write(b"junk\n" + b'{"id":"w0-r9","st')  # then an invalid line and a torn tail
    found = recover_shards(tmp_path, "w0")
    assert shard.read_bytes() == b"".join(lines)
    assert [(r["offset"], r["reason"]) for r in found.repaired] == [
        (len(lines[0]), "invalid line"),
        (len(BAD_LINES["nul-block"]) + sum(map(len, lines)), "invalid line"),
        (len(BAD_LINES["nul-block"]) + sum(map(len, lines)) + 5, "torn tail"),
    ]
    assert found.ids == {f"w0-r{i}" for i in range(5)}


def test_invalid_lines_after_the_last_record_are_truncated_in_place(tmp_path: Path) -> None:
    _write(tmp_path, "w0", ["ok", "ok"], shard_records=5)
    shard = tmp_path / "part-w0-00000.jsonl"
    good = shard.read_bytes()
    inode = shard.stat().st_ino
    with shard.open("ab") as fh:
        fh.write(b"\x00" * 10 + b"\n" + b"\x00" * 7)  # zeroed blocks at the end
    found = recover_shards(tmp_path, "w0")
    assert shard.read_bytes() == good
    assert shard.stat().st_ino == inode
    assert [(r["offset"], r["bytes"], r["reason"]) for r in found.repaired] == [
        (len(good), 11, "invalid line"),
        (len(good) + 11, 7, "torn tail"),
    ]


class Crash(Exception):
    """Stands for the process being killed at that point."""


def test_a_repair_killed_before_its_rename_is_redone_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard, lines = _with_bad_line(tmp_path, BAD_LINES["not-json"], 2)
    before = shard.read_bytes()

    def killed(src: object, dst: object) -> None:
        raise Crash(f"killed before renaming {src} to {dst}")

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", killed)
        with pytest.raises(Crash):
            recover_shards(tmp_path, "w0")
    assert shard.read_bytes() == before  # the old file, whole

    found = recover_shards(tmp_path, "w0")
    assert shard.read_bytes() == b"".join(lines)
    assert [r["saved_as"] for r in found.repaired] == [
        f"{TORN_DIR}/{shard.name}.{len(lines[0]) + len(lines[1])}"
    ]
    assert len(list((tmp_path / TORN_DIR).iterdir())) == 1  # saved once, not twice


def test_a_new_fault_at_the_same_offset_is_saved_under_a_new_name(tmp_path: Path) -> None:
    shard, lines = _with_bad_line(tmp_path, b"first fault\n", 1)
    recover_shards(tmp_path, "w0")
    shard.write_bytes(lines[0] + b"second fault\n" + b"".join(lines[1:]))
    found = recover_shards(tmp_path, "w0")
    saved = [r["saved_as"] for r in found.repaired]
    assert saved == [f"{TORN_DIR}/{shard.name}.{len(lines[0])}.1"]
    assert (tmp_path / saved[0]).read_bytes() == b"second fault\n"
    assert (tmp_path / TORN_DIR / f"{shard.name}.{len(lines[0])}").read_bytes() == (
        b"first fault\n"
    )


def test_shards_of_a_worker_whose_name_extends_another_are_not_read(tmp_path: Path) -> None:
    _write(tmp_path, "w0", ["ok"])
    _write(tmp_path, "w0-x", ["failed", "failed"])  # part-w0-x-00000.jsonl matches part-w0-*
    found = recover_shards(tmp_path, "w0")
    assert found.ids == {"w0-r0"}
    assert [s["file"] for s in found.shards] == ["part-w0-00000.jsonl"]


def test_a_record_only_json_can_read_is_kept(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "w0", shard_records=10)
    # an integer orjson cannot write sends the record to json, which writes NaN as is
    writer.write(_record("odd", row={"big": 2**70, "x": float("nan")}))
    writer.close()
    assert b"NaN" in (tmp_path / "part-w0-00000.jsonl").read_bytes()
    found = recover_shards(tmp_path, "w0")
    assert found.ids == {"odd"}
    assert found.repaired == []
