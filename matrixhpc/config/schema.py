"""The run configuration's schema: every section, its keys, defaults and bounds.

``extra="forbid"`` everywhere: a misspelled key must be an error, not a silent
fall back to the default. Checks that span sections live in :mod:`.checks`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .checks import cross_problems
from .errors import ConfigError

Engine = Literal["simulated", "llamacpp", "vllm", "external"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SimulatedConfig(Strict):
    profile: str = "h100-llama3.1-8b"
    time_scale: float = Field(1.0, ge=0)


class ServiceConfig(Strict):
    engine: Engine = "llamacpp"
    model: str | None = None  # a path or name; engine default when unset
    replicas: int = Field(1, ge=1)
    max_concurrency: int = Field(64, ge=1, description="per replica")
    timeout: float = Field(600.0, gt=0)
    max_retries: int = Field(3, ge=0)
    sticky: bool = False
    queue_metrics: float = Field(
        0.0, ge=0, description="seconds between scrapes of replicas' /metrics queue depth; 0: off"
    )
    startup_timeout: float = Field(600.0, gt=0)
    url: str | None = None  # engine: external
    api_key_env: str | None = None  # engine: external
    simulated: SimulatedConfig = SimulatedConfig()
    args: dict[str, Any] = {}  # engine flags passed through (vLLM, llama.cpp)
    python: str | None = None  # interpreter that runs the engine (its own venv/conda env)
    env: dict[str, str] = {}  # extra environment of the engine process


class RoleConfig(Strict):
    kind: Literal["llm", "python", "custom"] = "llm"
    service: str | None = None
    system: str | None = None  # Jinja template
    prompt: str | None = None  # Jinja template: the opening user message
    dialogue: list[str] = []  # roles whose turns form the chat (own = assistant)
    params: dict[str, Any] = {}  # sampling params sent to the engine
    function: str | None = None  # python: "module:function"
    class_: str | None = Field(None, alias="class")  # custom: "module:Class"
    options: dict[str, Any] = {}


class EdgeConfig(Strict):
    to: str
    when: str | None = None


class RoutingConfig(Strict):
    kind: Literal["sequential", "graph", "function"] = "sequential"
    order: list[str] = []
    repeat: bool = False
    start: str | None = None
    edges: dict[str, str | list[EdgeConfig]] = {}
    function: str | None = None
    stop_when: str | None = None
    max_steps: int = Field(100, ge=1)
    stop_on_error: bool = True


class DatasetConfig(Strict):
    path: str
    limit: int | None = Field(None, ge=0)
    trials: int = Field(1, ge=1)
    required: list[str] = []  # fields every row must have


class OutputConfig(Strict):
    shard_records: int = Field(100_000, ge=1)
    flush_interval: float = Field(1.0, gt=0)


class GroupConfig(Strict):
    count: int = Field(1, ge=1)
    roles: list[str]


class WorkersConfig(Strict):
    count: int = Field(2, ge=1)
    window: int = Field(256, ge=1, description="tasks in flight per origin")
    max_active: int = Field(4096, ge=1, description="tasks stepping at once per worker")
    groups: dict[str, GroupConfig] = {}
    host: str | None = None  # inbox interface; default 127.0.0.1, slurm.bind_host in Slurm jobs
    durability: Literal["off", "batch", "strict"] = "batch"  # journal commits (see README)
    commit_interval: float = Field(0.005, ge=0, description="seconds per group commit")
    journal_segment_mb: int = Field(64, ge=1)
    lease: float = Field(3600.0, gt=0, description="origin re-issues a task after this")
    ack_timeout: float = Field(10.0, gt=0, description="resend an unacknowledged hand-off")
    restarts: int = Field(3, ge=0, description="local launcher: restarts of a crashed worker")
    encrypt: bool = True  # CURVE on worker links: only holders of the run's keys connect

    @field_validator("durability", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``off`` as false: ``durability: off`` must still work."""
        return "off" if value is False else value


class SlurmJobConfig(Strict):
    """Resources of one kind of job (LLM server replicas, or workers)."""

    partition: str | None = None  # default: slurm.partition
    account: str | None = None
    qos: str | None = None
    time: str | int = "1-00:00:00"  # D-HH:MM:SS, HH:MM:SS or minutes
    nodes: int = Field(1, ge=1)
    cpus: int = Field(2, ge=1)
    mem: str | None = None  # e.g. "32G"
    gpus: int | None = None  # per job; default: 1 for vllm servers, else none
    gres: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    additional: dict[str, Any] = {}  # any other sbatch option, e.g. {reservation: x}


class ServerJobConfig(SlurmJobConfig):
    cpus: int = Field(4, ge=1)


class SlurmConfig(Strict):
    """How `--slurm` submits: one job per LLM replica, one array for the workers
    (mode: jobs), or everything in one multi-node allocation (mode: allocation)."""

    mode: Literal["jobs", "allocation"] = "jobs"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    setup: list[str] = []  # shell lines run first in every job (module load, venv)
    python: str | None = None  # interpreter on the compute nodes (default: this one)
    bind_host: str = "*"  # interface servers and workers listen on; "*" = all
    signal_delay_s: int = Field(120, ge=0, description="SIGUSR2 this long before the limit")
    array_parallelism: int = Field(256, ge=1)
    shared_nodes: bool = False  # allocation mode: servers and workers on the same nodes
    servers: ServerJobConfig = ServerJobConfig()
    workers: SlurmJobConfig = SlurmJobConfig()
    additional: dict[str, Any] = {}  # sbatch options for every job


class RunConfig(Strict):
    name: str = "run"
    seed: int = 0
    services: dict[str, ServiceConfig] = {}
    roles: dict[str, RoleConfig]
    routing: RoutingConfig
    dataset: DatasetConfig
    output: OutputConfig = OutputConfig()
    workers: WorkersConfig = WorkersConfig()
    slurm: SlurmConfig = SlurmConfig()

    @model_validator(mode="after")
    def _cross_check(self) -> RunConfig:
        problems = cross_problems(self)
        if problems:
            raise ConfigError(problems)
        return self

    def fingerprint(self) -> str:
        # not sort_keys: the order of workers.groups decides which worker gets which roles
        blob = json.dumps(self.model_dump(mode="json", by_alias=True))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def group_of(self, index: int) -> tuple[str, list[str]]:
        """The worker group (name, roles) that worker ``index`` belongs to."""
        if not self.workers.groups:
            return "all", list(self.roles)
        start = 0
        for name, group in self.workers.groups.items():
            if index < start + group.count:
                return name, group.roles
            start += group.count
        raise IndexError(f"worker index {index} beyond {start} workers")
