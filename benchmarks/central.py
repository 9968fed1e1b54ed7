"""Baseline 2, centralised dispatcher: one process sees every step and dispatches the next.

The shape of an orchestrator-driven pipeline: the dispatcher owns every task (admission
window, state, routing, output) and ``N`` worker processes only execute steps. A step
travels dispatcher -> worker -> dispatcher over ZeroMQ (ROUTER/DEALER, the runtime's
msgpack task array); the dispatcher runs the router on each result and sends the next step to
the worker with the fewest outstanding steps. Workers run the same agents with one
``LLMClient`` each (same per-replica concurrency) as the runtime's workers
(:mod:`benchmarks.stepping`). Nothing is throttled on purpose: the dispatcher awaits one
frame at a time, like the runtime's inbox, and sends as soon as it has routed.

    python -m benchmarks.central dispatcher --run-dir RD --workers N --window W
    python -m benchmarks.central worker --run-dir RD --index I
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from benchmarks.stepping import Stepper, event_loop_policy, make_tasks, route
from matrixhpc.build import build_router
from matrixhpc.codec import pack, task_from_wire, task_to_wire, unpack
from matrixhpc.data.writers import ShardWriter
from matrixhpc.files import atomic_write_json, read_json
from matrixhpc.launch.process import Child, spawn
from matrixhpc.rundir import RunDir
from matrixhpc.runtime.stats import base_status
from matrixhpc.task import Task

HELLO = b"hello"
STOP = b"stop"
HWM = 1_000_000  # the admission window bounds what is queued; sockets must never drop


def _encode(task: Task) -> bytes:
    """A task on the wire: the runtime's msgpack task array."""
    return pack(task_to_wire(task))


def _decode(frame: bytes) -> Task:
    return task_from_wire(unpack(frame))


def _address_file(run_dir: Path) -> Path:
    return run_dir / "central.json"


class Dispatcher:
    def __init__(self, run_dir: Path, workers: int, window: int) -> None:
        self.rd = RunDir(run_dir)
        self.cfg = self.rd.load()
        self.router = build_router(self.cfg.routing)
        self.workers = workers
        self.window = asyncio.Semaphore(window)
        self.writer = ShardWriter(self.rd.output, "dispatcher", self.cfg.output.shard_records)
        self.zmq = zmq.asyncio.Context()
        self.sock = self.zmq.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.SNDHWM, HWM)
        self.sock.setsockopt(zmq.RCVHWM, HWM)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        atomic_write_json(_address_file(run_dir), {"address": f"tcp://127.0.0.1:{port}"})
        self.outstanding: dict[bytes, int] = {}
        self.in_flight = 0
        self.done = 0
        self.routed = 0
        self.admission_done = False
        self.finished = asyncio.Event()

    async def run(self) -> None:
        while len(self.outstanding) < self.workers:  # every worker says hello first
            ident, body = await self.sock.recv_multipart()
            if body == HELLO:
                self.outstanding[ident] = 0
        start = (time.time(), time.process_time(), _rss())
        receiver = asyncio.create_task(self._receive())
        await self._admit()
        await self.finished.wait()
        receiver.cancel()
        for ident in self.outstanding:
            await self.sock.send_multipart([ident, STOP])
        self.writer.close()
        self._write_status(start)
        self.sock.close(linger=2000)
        self.zmq.term()

    async def _admit(self) -> None:
        for task in make_tasks(self.cfg, "dispatcher"):
            await self.window.acquire()
            self.in_flight += 1
            task.next = self.router.first(task)
            await self._send(task)
        self.admission_done = True
        if self.in_flight == 0:
            self.finished.set()

    async def _send(self, task: Task) -> None:
        ident = min(self.outstanding, key=self.outstanding.__getitem__)
        self.outstanding[ident] += 1
        await self.sock.send_multipart([ident, _encode(task)], copy=False)

    async def _receive(self) -> None:
        while True:
            ident, frame = await self.sock.recv_multipart()
            self.outstanding[ident] -= 1
            task = _decode(frame)
            route(self.router, task)
            self.routed += 1
            if task.finished:
                self.writer.write(task.to_record())
                self.in_flight -= 1
                self.done += 1
                self.window.release()
                if self.admission_done and self.in_flight == 0:
                    self.finished.set()
            else:
                await self._send(task)

    def _write_status(self, start: tuple[float, float, float]) -> None:
        status = base_status("dispatcher", "dispatcher")
        status.update(
            kind="dispatcher",
            steps=0,
            routed=self.routed,
            done=self.done,
            started=start[0],
            cpu_s_start=start[1],
            rss_mb_start=start[2],
            updated=time.time(),
        )
        atomic_write_json(self.rd.status / "dispatcher.json", status)


async def dispatch(run_dir: Path, workers: int, window: int) -> None:
    await Dispatcher(run_dir, workers, window).run()


async def work(run_dir: Path, index: int) -> None:
    name = f"c{index:03d}"
    stepper = Stepper(name, run_dir)
    stepper.connect()
    address = await _wait_address(run_dir)
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, name.encode())
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.connect(address)
    jobs: set[asyncio.Task[None]] = set()

    async def execute(task: Task) -> None:
        await stepper.step(task)
        await sock.send(_encode(task), copy=False)

    stepper.mark_start()
    await sock.send(HELLO)
    try:
        while True:
            frame = await sock.recv()
            if frame == STOP:
                break
            job = asyncio.create_task(execute(_decode(frame)))
            jobs.add(job)
            job.add_done_callback(_fatal_on_error)
            job.add_done_callback(jobs.discard)
    finally:
        stepper.write_status("central-worker")
        await stepper.close()
        sock.close(linger=0)
        ctx.term()


def _fatal_on_error(job: asyncio.Task[None]) -> None:
    """A step that fails outside its agent is a bug here: fail the run loudly, not hang."""
    if not job.cancelled() and job.exception() is not None:
        traceback.print_exception(job.exception())
        os._exit(1)


async def _wait_address(run_dir: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry: Any = read_json(_address_file(run_dir))
        if isinstance(entry, dict) and entry.get("address"):
            return str(entry["address"])
        await asyncio.sleep(0.05)
    raise TimeoutError("the dispatcher never published its address")


def launch(run_dir: Path, inflight: int, workers: int, env: dict[str, str]) -> list[Child]:
    """Start the dispatcher (window = ``inflight``) and ``workers`` step executors."""
    logs = RunDir(run_dir).logs
    base = [sys.executable, "-m", "benchmarks.central"]
    argv = [*base, "dispatcher", "--run-dir", str(run_dir), "--workers", str(workers),
            "--window", str(inflight)]  # fmt: skip
    children = [spawn("dispatcher", "worker", argv, logs / "dispatcher.log", env=env)]
    for i in range(workers):
        argv = [*base, "worker", "--run-dir", str(run_dir), "--index", str(i)]
        children.append(spawn(f"c{i:03d}", "worker", argv, logs / f"c{i:03d}.log", env=env))
    return children


def _rss() -> float:
    from matrixhpc.runtime.stats import resident_mb

    return resident_mb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    disp = sub.add_parser("dispatcher")
    disp.add_argument("--run-dir", type=Path, required=True)
    disp.add_argument("--workers", type=int, required=True)
    disp.add_argument("--window", type=int, required=True)
    wrk = sub.add_parser("worker")
    wrk.add_argument("--run-dir", type=Path, required=True)
    wrk.add_argument("--index", type=int, required=True)
    args = parser.parse_args()
    event_loop_policy()
    if args.role == "dispatcher":
        asyncio.run(dispatch(args.run_dir, args.workers, args.window))
    else:
        asyncio.run(work(args.run_dir, args.index))


if __name__ == "__main__":
    main()
