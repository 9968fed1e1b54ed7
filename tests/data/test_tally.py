"""What indexes count of records and the manifest adds up: failures by message, endings."""

from __future__ import annotations

from pathlib import Path

from matrixhpc.data.manifest import build_manifest
from matrixhpc.data.shard_recovery import recover_shards
from matrixhpc.data.tally import MESSAGES_PER_SHARD, OTHER, count, new_shard
from matrixhpc.data.writers import ShardWriter


def _records() -> list[dict[str, object]]:
    recs: list[dict[str, object]] = []
    for i in range(12):
        if i % 3 == 0:
            recs.append({"id": f"t{i}", "status": "failed", "error": "HTTP 500 from r0\ntrace"})
        elif i % 4 == 1:
            recs.append({"id": f"t{i}", "status": "ok", "ended": "max_steps"})
        else:
            recs.append({"id": f"t{i}", "status": "ok"})
    recs.append({"id": "t99", "status": "failed", "error": "UndefinedError: 'row.x'"})
    return recs


def test_writer_and_recovery_count_the_same(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, "w0", shard_records=5)
    for rec in _records():
        writer.write(rec)
    writer.close()
    assert recover_shards(tmp_path, "w0").shards == writer.shards
    manifest = build_manifest(tmp_path, name="n", config_hash="h")
    assert manifest["failed"] == 5
    assert manifest["top_errors"] == [["HTTP 500 from r0", 4], ["UndefinedError: 'row.x'", 1]]
    assert manifest["ended"] == {"max_steps": 2}  # t1 and t5 (t9 failed)


def test_distinct_messages_per_shard_are_capped() -> None:
    shard = new_shard("s")
    for i in range(MESSAGES_PER_SHARD + 5):
        count(shard, {"status": "failed", "error": f"error {i}"})
    assert len(shard["errors"]) == MESSAGES_PER_SHARD + 1
    assert shard["errors"][OTHER] == 5
