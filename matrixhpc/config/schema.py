"""The run configuration's schema: every section, its keys, defaults and bounds.

``extra="forbid"`` everywhere: a misspelled key must be an error, not a silent
fall back to the default. Counts are strict integers inside a stated range and
durations finite seconds (:mod:`.bounds`): ``workers.count: true`` or ``.inf``
seconds are errors here, not surprises after launch. Checks that span sections
live in :mod:`.checks`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from matrixhpc.llm.engines.simulated.profiles import DEFAULT_PROFILE, PROFILES

from .bounds import INT64_MAX, INT64_MIN, duration, integer, unknown_name
from .checks import cross_problems
from .errors import ConfigError
from .sandboxes import SandboxConfig

Engine = Literal["simulated", "llamacpp", "vllm", "external"]
#: a Slurm time limit given as whole minutes
Minutes = Annotated[int, Field(strict=True, ge=1, le=10**7)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SimulatedConfig(Strict):
    profile: str = Field(DEFAULT_PROFILE, description="a name from the simulated PROFILES")
    time_scale: float = Field(
        1.0,
        strict=True,
        allow_inf_nan=False,
        ge=0,
        le=1e6,
        description="multiplies every simulated duration; 0 answers at once (0..1e6)",
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        """An unknown profile used to pass here and fail in the server after launch."""
        if value not in PROFILES:
            raise ValueError(unknown_name("profile", value, PROFILES))
        return value


class ServiceConfig(Strict):
    engine: Engine = "llamacpp"
    model: str | None = None  # a path or name; engine default when unset
    replicas: int = integer(1, 1, 10_000, "LLM server replicas of this service")
    max_concurrency: int = integer(64, 1, 100_000, "requests in flight per replica per process")
    timeout: float = duration(600.0, "one attempt of one request")
    max_retries: int = integer(3, 0, 100, "extra attempts after a failed answer")
    replica_wait: float = duration(
        3600.0,
        "how long a request waits while no replica can be reached (all down, restarting, "
        "requeued Slurm server jobs back in the queue) before the worker stops resumably; "
        "the default covers a requeued server job waiting in a busy queue",
    )
    sticky: bool = False
    queue_metrics: float = duration(
        0.0, "between scrapes of replicas' /metrics queue depth; 0: off", zero_ok=True
    )
    startup_timeout: float = duration(600.0, "for a replica to start and answer /health")
    url: str | None = None  # engine: external
    api_key_env: str | None = None  # engine: external
    simulated: SimulatedConfig = SimulatedConfig()
    args: dict[str, Any] = {}  # engine flags passed through (vLLM, llama.cpp)
    python: str | None = None  # interpreter that runs the engine (its own venv/conda env)
    env: dict[str, str] = {}  # extra environment of the engine process


class RoleConfig(Strict):
    kind: Literal["llm", "python", "custom", "sandbox"] = "llm"
    service: str | None = None
    system: str | None = None  # Jinja template
    prompt: str | None = None  # Jinja template: the opening user message
    dialogue: list[str] = []  # roles whose turns form the chat (own = assistant)
    params: dict[str, Any] = {}  # sampling params sent to the engine
    function: str | None = None  # python: "module:function"
    class_: str | None = Field(None, alias="class")  # custom: "module:Class"
    options: dict[str, Any] = {}
    sandbox: str | None = None  # the task's sandbox this role uses (config/sandboxes.py)
    command: str | None = None  # sandbox: Jinja template of the command (sh -c)
    code_from: str | None = None  # sandbox: run the last code block of this role's reply
    stdin: str | None = None  # sandbox: Jinja template of the command's input
    fail_on_limit: bool = False  # sandbox: a limit hit fails the step (else only recorded)


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
    max_steps: int = integer(100, 1, 1_000_000, "steps of one task before it is cut off")
    stop_on_error: bool = True


class DatasetConfig(Strict):
    path: str
    limit: int | None = integer(None, 0, 10**12, "rows read; unset: all")
    trials: int = integer(1, 1, 1_000_000, "tasks per row")
    required: list[str] = []  # fields every row must have


class OutputConfig(Strict):
    shard_records: int = integer(100_000, 1, 10**9, "records per output shard")
    flush_interval: float = duration(1.0, "between flushes of the output shards", high=3600.0)


class GroupConfig(Strict):
    count: int = integer(1, 1, 100_000, "workers in this group")
    roles: list[str]


class WorkersConfig(Strict):
    count: int = integer(2, 1, 100_000, "worker processes")
    window: int = integer(256, 1, 1_000_000, "tasks in flight per origin")
    max_active: int = integer(4096, 1, 1_000_000, "tasks stepping at once per worker")
    groups: dict[str, GroupConfig] = {}
    host: str | None = None  # inbox interface; default 127.0.0.1, slurm.bind_host in Slurm jobs
    durability: Literal["off", "batch", "strict"] = "batch"  # journal commits (see README)
    commit_interval: float = duration(0.005, "per group commit", zero_ok=True, high=60.0)
    journal_segment_mb: int = integer(64, 1, 4096, "MiB per journal segment")
    lease: float = duration(
        300.0, "origin re-issues a task nobody reported moving for this long (doubled per attempt)"
    )
    max_attempts: int = integer(3, 1, 100, "attempts of a task before it is recorded failed")
    stall_warning: float = duration(
        600.0, "launcher: warn after this long without a task written; 0 = never", zero_ok=True
    )
    ack_timeout: float = duration(10.0, "resend an unacknowledged hand-off after this")
    restarts: int = integer(3, 0, 1000, "local launcher: restarts of a crashed worker")
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
    time: str | Minutes = "1-00:00:00"  # D-HH:MM:SS, HH:MM:SS or minutes
    nodes: int = integer(1, 1, 100_000, "nodes per job")
    cpus: int = integer(2, 1, 100_000, "CPUs per task")
    mem: str | None = None  # e.g. "32G"
    gpus: int | None = integer(None, 0, 1024, "GPUs per node; unset: 1 for vllm servers, else none")
    gres: str | None = None
    constraint: str | None = None
    exclusive: bool = False
    additional: dict[str, Any] = {}  # any other sbatch option, e.g. {reservation: x}


class ServerJobConfig(SlurmJobConfig):
    cpus: int = integer(4, 1, 100_000, "CPUs per task")


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
    signal_delay_s: int = integer(120, 0, 65_535, "SIGUSR2 this many seconds before the limit")
    array_parallelism: int = integer(256, 1, 100_000, "array tasks running at once")
    shared_nodes: bool = False  # allocation mode: servers and workers on the same nodes
    servers: ServerJobConfig = ServerJobConfig()
    workers: SlurmJobConfig = SlurmJobConfig()
    additional: dict[str, Any] = {}  # sbatch options for every job


class RunPolicy(Strict):
    """How a finished run reports to whoever launched it."""

    max_failed_fraction: float = Field(
        0.1,
        strict=True,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="above this fraction of failed tasks a finished run exits 3 (0..1; 1: never)",
    )


class RunConfig(Strict):
    name: str = "run"
    seed: int = integer(0, INT64_MIN, INT64_MAX, "run seed (64-bit)")
    services: dict[str, ServiceConfig] = {}
    sandboxes: dict[str, SandboxConfig] = {}
    roles: dict[str, RoleConfig]
    routing: RoutingConfig
    dataset: DatasetConfig
    output: OutputConfig = OutputConfig()
    workers: WorkersConfig = WorkersConfig()
    slurm: SlurmConfig = SlurmConfig()
    run: RunPolicy = RunPolicy()

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
