"""The simulated hardware every design runs on, and starting identical engines for baselines.

The peer-to-peer run starts its replicas itself (``matrixhpc run --local`` reads
``services.llm`` from the generated config). The baselines get *the same processes*: the
harness lays out a run directory with the same config and starts each replica with
``matrixhpc serve simulated --run-dir RD --service llm --replica k``, the command the local
launcher runs. Same profile, time scale, per-run API key and registry entries; the
baselines' clients find them through the registry exactly like the runtime's workers.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matrixhpc.launch.process import Child, matrixhpc_argv, spawn, stop
from matrixhpc.llm.engines.simulated import PROFILES
from matrixhpc.llm.replicas import RegistryReplicaSource
from matrixhpc.llm.types import ReplicaInfo
from matrixhpc.registry import Registry
from matrixhpc.rundir import RunDir

SERVICE = "llm"


@dataclass(frozen=True, slots=True)
class EngineSetup:
    """The LLM side, identical for every design.

    ``max_concurrency`` is the per-replica request cap of *each* client process (the
    runtime's ``services.llm.max_concurrency``): equal to the profile's batch size so one
    process alone can fill a replica; beyond the batch, requests queue in the engine.
    """

    profile: str = "h100-llama3.1-8b"
    replicas: int = 2
    time_scale: float = 0.1
    max_concurrency: int = 256
    sticky: bool = True  # as in Coral: a dialogue keeps its replica

    def describe(self) -> dict[str, Any]:
        """The profile's numbers in real (time-scaled) units, for reports."""
        p = PROFILES[self.profile]
        scale = self.time_scale or 1.0
        batch_tps = p.aggregate_tps(p.max_batch)
        return {
            **asdict(self),
            "single_stream_tps": p.single_stream_tps,
            "saturated_tps": p.saturated_tps,
            "max_batch": p.max_batch,
            "prefill_tps": p.prefill_tps,
            "base_latency": p.base_latency,
            "batch_cap_tps_per_replica": batch_tps,
            "model_ceiling_real_tps": self.replicas * batch_tps / scale,
        }

    def service_config(self) -> dict[str, Any]:
        """``services.llm`` of the generated config."""
        return {
            "engine": "simulated",
            "replicas": self.replicas,
            "max_concurrency": self.max_concurrency,
            "sticky": self.sticky,
            "startup_timeout": 60,
            "simulated": {"profile": self.profile, "time_scale": self.time_scale},
        }


class EngineSet:
    """The replicas of a baseline run: started like the local launcher starts them."""

    def __init__(self, run_dir: RunDir, replicas: int) -> None:
        self.rd = run_dir
        self.count = replicas
        self.children: list[Child] = []

    def start(self, timeout: float = 60.0) -> list[ReplicaInfo]:
        for k in range(self.count):
            argv = matrixhpc_argv(
                "serve", "simulated", "--run-dir", str(self.rd.root), "--service", SERVICE,
                "--replica", str(k),
            )  # fmt: skip
            log = self.rd.logs / f"{SERVICE}-{k}.log"
            self.children.append(spawn(f"{SERVICE}-{k}", "service", argv, log, group=SERVICE))
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> list[ReplicaInfo]:
        source = RegistryReplicaSource(Registry(self.rd.registry, scan_interval=0.1))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [c for c in self.children if c.exited() is not None]
            if dead:
                raise RuntimeError(f"engine {dead[0].name} exited; see {dead[0].log}")
            infos = source.replicas(SERVICE)
            if len(infos) >= self.count:
                return infos
            time.sleep(0.1)
        raise TimeoutError(f"{self.count} engines not ready after {timeout:.0f}s")

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children]

    def stop(self) -> None:
        stop(self.children)
        self.children = []


def replicas_of(run_dir: Path) -> list[ReplicaInfo]:
    """The live replicas registered in a run directory (URLs and API keys)."""
    source = RegistryReplicaSource(Registry(RunDir(run_dir).registry, scan_interval=0.1))
    return source.replicas(SERVICE)
