"""Bad input never stops a run: garbage frames, bad dataset rows; `stop` ends everything."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import msgpack
import zmq
from conftest import (
    assert_complete,
    dialogue_config,
    matrixhpc,
    mcq_rows,
    records,
    start_run,
    wait_for,
    write_dataset,
)

from matrixhpc.codec import FrameType, encode_ack, encode_task
from matrixhpc.keys import CurveKeys
from matrixhpc.launch.process import pid_alive
from matrixhpc.task import Task


def _garbage_frames() -> list[bytes]:
    rng = random.Random(7)
    frames = [
        b"",
        b"\x00",
        b"\xff" * 64,
        bytes([FrameType.TASK]) + b"\xc1\xc1",
        bytes([FrameType.TASK]) + msgpack.packb({"not": "a task"}),
        bytes([FrameType.RETURN]) + msgpack.packb([1, 2, 3]),
        bytes([FrameType.CONTROL]) + msgpack.packb("hello"),
    ]
    frames += [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(200)]
    forged = Task(id="r0-t0", seed=1, row={}, origin="w000", next="__end__", status="ok")
    frames.append(encode_task(forged, FrameType.RETURN))  # a duplicate return: must not be written
    # a member forging hand-offs with real ids (and ACKs for them): without the admission's
    # token they must neither strand the real tasks (dedup keys) nor be written
    for i in range(200):
        fake = Task(
            id=f"r{i % 50}-t{i % 4}",
            seed=1,
            row={},
            origin=f"w00{i % 2}",
            next=["student", "extractor", "__end__"][i % 3],
            hop=i % 7,
            token=rng.getrandbits(62) | 1,
        )
        frames.append(encode_task(fake, FrameType.TASK, "w001"))
        frames.append(encode_ack(fake.id, fake.token, 0, fake.hop))
    return frames


def test_garbage_frames_do_not_stop_the_run(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset, 0.03)
    run_dir = tmp_path / "run"
    proc = start_run(cfg, run_dir, "dataset.trials=4", "workers.count=2")
    entry = run_dir / "registry" / "workers" / "w000.json"
    wait_for(entry.exists)
    address = json.loads(entry.read_text())["address"]
    frames = _garbage_frames()
    keys = CurveKeys.create(run_dir / "secrets" / "curve.key")
    ctx = zmq.Context()
    outsider = ctx.socket(zmq.PUSH)  # no keys: the CURVE handshake fails, nothing arrives
    outsider.connect(address)
    for frame in frames[:20]:
        if outsider.poll(100, zmq.POLLOUT):
            outsider.send(frame, flags=zmq.NOBLOCK)
    insider = ctx.socket(zmq.PUSH)  # a peer of the run that sends garbage
    insider.curve_serverkey, insider.curve_publickey = keys.public, keys.public
    insider.curve_secretkey = keys.secret
    insider.connect(address)
    for frame in frames:
        insider.send(frame)
    outsider.close(linger=0)
    insider.close(linger=2000)
    ctx.term()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    recs = records(run_dir)
    assert_complete(recs, 200)
    status = json.loads((run_dir / "status" / "w000.json").read_text())
    garbage = len(frames) - 400  # the forged TASK/ACK frames decode: they are not "dropped"
    assert status["dropped_frames"] >= garbage - 1 - 10  # random bytes may hit a valid tag
    assert status["dropped_frames"] <= garbage, "the outsider's frames must not arrive"
    forged = [r for r in recs if r["id"] == "r0-t0"]
    assert len(forged) == 1, forged
    assert forged[0]["history"], "the forged empty return must not win"


def test_bad_rows_are_recorded_and_the_rest_completes(tmp_path: Path) -> None:
    rows = mcq_rows(30)
    bad = [
        '{"id": "broken", "question": ',
        '["a list", "not an object"]',
        json.dumps({"id": "no-options", "question": "q?", "answer": "A"}),
    ]
    data = write_dataset(tmp_path / "mixed.jsonl", rows, bad)
    cfg = dialogue_config(tmp_path, data)
    run_dir = tmp_path / "run"
    proc = matrixhpc("run", str(cfg), "--local", "dataset.trials=2", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert_complete(records(run_dir), 60)
    errors = [
        json.loads(x) for x in (run_dir / "output" / "_errors.jsonl").read_text().splitlines()
    ]
    assert sorted(e["line"] for e in errors) == [31, 32, 33]
    assert all(e["source"] == str(data) and e["reason"] for e in errors)
    assert any("options" in e["reason"] for e in errors)
    manifest = json.loads((run_dir / "output" / "_manifest.json").read_text())
    assert manifest["row_errors"] == 3
    assert manifest["records"] == 60


def test_stop_ends_every_process(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset, 1.0)
    run_dir = tmp_path / "run"
    proc = start_run(cfg, run_dir, "dataset.trials=20")
    pids_file = run_dir / "pids.json"
    wait_for(lambda: pids_file.exists() and len(json.loads(pids_file.read_text())["children"]) == 4)
    wait_for(lambda: (run_dir / "status" / "w001.json").exists())
    pids = json.loads(pids_file.read_text())
    stopped = matrixhpc("stop", str(run_dir))
    assert stopped.returncode == 0, stopped.stderr
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    for child in pids["children"]:
        assert not pid_alive(child["pid"]), child
    run = json.loads((run_dir / "run.json").read_text())
    assert run["state"] == "stopped"
    assert os.path.exists(run_dir / "output" / "_manifest.json")


def test_replica_killed_mid_run_the_other_takes_the_load(tmp_path: Path, dataset: Path) -> None:
    cfg = dialogue_config(tmp_path, dataset, 0.1)
    run_dir = tmp_path / "run"
    proc = start_run(cfg, run_dir, "dataset.trials=4", "workers.window=10")
    status = run_dir / "status" / "w000.json"
    wait_for(lambda: status.exists() and json.loads(status.read_text())["done"] >= 5)
    pids = json.loads((run_dir / "pids.json").read_text())
    victim = next(c for c in pids["children"] if c["name"] == "llm-1")
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.time()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "replica llm-1 exited" in err
    recs = records(run_dir)
    assert_complete(recs, 200)  # no task lost: every call to the dead replica was retried
    late = [
        t
        for r in recs
        for t in r["history"]
        if t.get("timings", {}).get("start", 0) > killed_at + 1
    ]
    assert late
    assert all(t.get("replica") != "r1" for t in late if "replica" in t)
    retried = [t for t in late if t.get("data", {}).get("retries")]
    assert len(retried) < len(late) / 4, "the dead replica must be dropped, not retried per call"
