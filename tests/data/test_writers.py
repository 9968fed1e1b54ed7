"""Output shards, the per-worker index, the error log and the manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matrixhpc.data.manifest import ERRORS, MANIFEST, build_manifest, merge_errors
from matrixhpc.data.writers import ERRORS_DIR, INDEX_DIR, ErrorLog, ShardWriter


def _rec(i: int, status: str = "ok") -> dict[str, Any]:
    return {"id": f"t{i}", "status": status, "text": f"ünï {i}"}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_shards_roll_at_shard_records(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w3", shard_records=2)
    for i in range(5):
        w.write(_rec(i, "ok" if i != 3 else "failed"))
    w.close()
    files = sorted(p.name for p in tmp_path.glob("part-*.jsonl"))
    assert files == ["part-w3-00000.jsonl", "part-w3-00001.jsonl", "part-w3-00002.jsonl"]
    assert [[r["id"] for r in _lines(tmp_path / f)] for f in files] == [
        ["t0", "t1"],
        ["t2", "t3"],
        ["t4"],
    ]
    assert w.shards == [
        {"file": "part-w3-00000.jsonl", "records": 2, "ok": 2, "failed": 0},
        {"file": "part-w3-00001.jsonl", "records": 2, "ok": 1, "failed": 1},
        {"file": "part-w3-00002.jsonl", "records": 1, "ok": 1, "failed": 0},
    ]


def test_exact_multiple_does_not_open_an_empty_shard(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=3)
    for i in range(6):
        w.write(_rec(i))
    w.close()
    assert len(list(tmp_path.glob("part-*.jsonl"))) == 2
    assert [s["records"] for s in w.shards] == [3, 3]


def test_nothing_written_means_no_shard_file(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path / "out", "w0", shard_records=10)
    assert (tmp_path / "out").is_dir()
    w.close()
    assert list((tmp_path / "out").glob("part-*")) == []
    index = json.loads((tmp_path / "out" / INDEX_DIR / "w0.json").read_text())
    assert index == {"shards": []}


def test_records_are_utf8_json_lines(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=10)
    w.write({"id": "x", "status": "ok", "text": "日本 ü", "path": Path("/a")})
    w.close()
    raw = (tmp_path / "part-w0-00000.jsonl").read_text(encoding="utf-8")
    assert "日本 ü" in raw  # not \\u-escaped
    assert raw.endswith("\n") and raw.count("\n") == 1
    assert json.loads(raw)["path"] == "/a"  # unknown types become strings


def test_index_file_is_refreshed_by_write_index(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w1", shard_records=2)
    index_path = tmp_path / INDEX_DIR / "w1.json"
    w.write(_rec(0))
    w.flush()
    # flush makes the data readable before close, but only flushes the file
    assert [r["id"] for r in _lines(tmp_path / "part-w1-00000.jsonl")] == ["t0"]
    assert not index_path.exists()
    w.write_index()
    assert json.loads(index_path.read_text())["shards"] == [
        {"file": "part-w1-00000.jsonl", "records": 1, "ok": 1, "failed": 0}
    ]
    w.write(_rec(1, "failed"))
    w.write(_rec(2))
    w.flush()
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(1, 1, 0)]  # not yet
    w.write_index()
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(2, 1, 1), (1, 1, 0)]
    # write_index flushes the data it indexes
    assert [r["id"] for r in _lines(tmp_path / "part-w1-00001.jsonl")] == ["t2"]
    w.write(_rec(3))
    w.close()  # close writes the index too
    shards = json.loads(index_path.read_text())["shards"]
    assert [(s["records"], s["ok"], s["failed"]) for s in shards] == [(2, 1, 1), (2, 2, 0)]


def test_close_is_idempotent(tmp_path: Path) -> None:
    w = ShardWriter(tmp_path, "w0", shard_records=10)
    w.write(_rec(0))
    w.close()
    w.close()
    assert len(_lines(tmp_path / "part-w0-00000.jsonl")) == 1


def test_error_log_is_lazy_and_counts(tmp_path: Path) -> None:
    log = ErrorLog(tmp_path, "w2")
    log.flush()
    log.close()
    assert not (tmp_path / ERRORS_DIR).exists()  # no errors, no file
    log = ErrorLog(tmp_path, "w2")
    log.write({"source": "a.jsonl", "line": 3, "index": 2, "reason": "invalid JSON"})
    log.write({"source": "a.jsonl", "line": 9, "index": 8, "reason": "missing"})
    log.flush()
    assert log.count == 2
    assert log.path == tmp_path / ERRORS_DIR / "w2.jsonl"
    assert [e["line"] for e in _lines(log.path)] == [3, 9]
    log.close()
    log.close()


def _worker_output(out: Path, name: str, statuses: list[str], errors: int) -> None:
    w = ShardWriter(out, name, shard_records=2)
    for i, status in enumerate(statuses):
        w.write(_rec(i, status))
    w.close()
    log = ErrorLog(out, name)
    for i in range(errors):
        log.write({"source": "d.jsonl", "line": i + 1, "worker": name, "reason": "bad"})
    log.close()


def test_build_manifest_counts_and_merges_errors(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok", "ok", "failed"], errors=2)
    _worker_output(out, "w1", ["ok", "failed", "failed", "ok", "ok"], errors=0)
    _worker_output(out, "w2", [], errors=1)
    manifest = build_manifest(out, name="coral", config_hash="abc123", state="finished")
    assert manifest["name"] == "coral" and manifest["config_hash"] == "abc123"
    assert manifest["state"] == "finished"
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (8, 5, 3)
    assert manifest["row_errors"] == 3
    assert [s["file"] for s in manifest["shards"]] == [
        "part-w0-00000.jsonl",
        "part-w0-00001.jsonl",
        "part-w1-00000.jsonl",
        "part-w1-00001.jsonl",
        "part-w1-00002.jsonl",
    ]
    assert sum(s["records"] for s in manifest["shards"]) == 8
    assert json.loads((out / MANIFEST).read_text()) == manifest
    merged = _lines(out / ERRORS)
    assert [(e["worker"], e["line"]) for e in merged] == [("w0", 1), ("w0", 2), ("w2", 1)]


def test_manifest_agrees_with_the_data(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok"] * 7, errors=0)
    manifest = build_manifest(out, name="n", config_hash="h")
    on_disk = sum(len(_lines(out / s["file"])) for s in manifest["shards"])
    assert on_disk == manifest["records"] == 7


def test_manifest_can_be_rebuilt(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok", "failed"], errors=1)
    first = build_manifest(out, name="n", config_hash="h")
    second = build_manifest(out, name="n", config_hash="h")
    assert (second["records"], second["row_errors"]) == (first["records"], first["row_errors"])
    assert len(_lines(out / ERRORS)) == 1  # merged again, not appended twice


def test_manifest_of_an_empty_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.mkdir()
    manifest = build_manifest(out, name="n", config_hash="h")
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (0, 0, 0)
    assert manifest["row_errors"] == 0 and manifest["shards"] == []
    assert (out / ERRORS).read_text() == ""


def test_manifest_ignores_a_garbage_index(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _worker_output(out, "w0", ["ok"], errors=0)
    (out / INDEX_DIR / "broken.json").write_text("{half")
    assert build_manifest(out, name="n", config_hash="h")["records"] == 1


def test_merge_errors_skips_blank_lines(tmp_path: Path) -> None:
    (tmp_path / ERRORS_DIR).mkdir()
    (tmp_path / ERRORS_DIR / "w1.jsonl").write_text('{"b": 1}\n\n')
    (tmp_path / ERRORS_DIR / "w0.jsonl").write_text('{"a": 1}\n')
    assert merge_errors(tmp_path) == 2
    assert (tmp_path / ERRORS).read_text() == '{"a": 1}\n{"b": 1}\n'
