"""The manifest a run ends with: written by data/ for every launcher and worker 0."""

from __future__ import annotations

import json
from pathlib import Path

from matrixhpc.config import load_config
from matrixhpc.data.manifest import ERRORS, MANIFEST, write_manifest
from matrixhpc.data.writers import ErrorLog, ShardWriter
from matrixhpc.files import atomic_write_json, read_json

HELLO = Path(__file__).resolve().parents[2] / "configs" / "hello.yaml"


def _output(tmp_path: Path) -> Path:
    out = tmp_path / "output"
    writer = ShardWriter(out, "w000", shard_records=2)
    for i, status in enumerate(["ok", "failed", "ok"]):
        writer.write({"id": f"r{i}", "status": status})
    writer.close()
    errors = ErrorLog(out, "w000")
    errors.write({"row": 7, "error": "missing field"})
    errors.flush()
    return out


def test_the_manifest_names_the_run_its_input_and_its_state(tmp_path: Path) -> None:
    cfg = load_config(HELLO)
    out = _output(tmp_path)
    atomic_write_json(tmp_path / "run.json", {"input_fingerprint": "sha:abc"})
    manifest = write_manifest(out, tmp_path / "run.json", cfg, "finished")
    assert read_json(out / MANIFEST) == manifest
    assert (manifest["name"], manifest["config_hash"]) == (cfg.name, cfg.fingerprint())
    assert (manifest["input_fingerprint"], manifest["state"]) == ("sha:abc", "finished")
    assert (manifest["records"], manifest["ok"], manifest["failed"]) == (3, 2, 1)
    assert manifest["row_errors"] == 1
    assert [json.loads(ln)["row"] for ln in (out / ERRORS).read_text().splitlines()] == [7]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_without_a_readable_run_json_the_input_is_unknown(tmp_path: Path) -> None:
    cfg = load_config(HELLO)
    out = _output(tmp_path)
    assert write_manifest(out, tmp_path / "run.json", cfg, "stopped")["input_fingerprint"] is None
    (tmp_path / "run.json").write_text("[1, 2]")  # JSON, but not what a launcher writes
    manifest = write_manifest(out, tmp_path / "run.json", cfg, "failed")
    assert (manifest["input_fingerprint"], manifest["state"]) == (None, "failed")
