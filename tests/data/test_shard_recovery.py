"""A restarting origin reads back its own shards: ids, counts, torn tails."""

from __future__ import annotations

import json
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
    assert found.ids == set() and found.shards == [] and found.repaired == []
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
        {"file": last.name, "offset": len(good), "bytes": len(torn), "saved_as": str(saved)}
    ]
    assert (tmp_path / saved).read_bytes() == torn
    assert [s["records"] for s in found.shards] == [2, 1]
    again = recover_shards(tmp_path, "w0")  # repaired once: nothing more to do
    assert again.repaired == [] and again.ids == found.ids


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
