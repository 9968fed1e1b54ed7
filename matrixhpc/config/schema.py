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
    JsonValue,
    field_validator,
    model_validator,
)

from matrixhpc.llm.engines.simulated.profiles import DEFAULT_PROFILE, PROFILES

from .bounds import INT64_MAX, INT64_MIN, duration, integer, unknown_name
from .checks import cross_problems
from .errors import ConfigError
from .sandboxes import SandboxConfig
from .script import RoleScriptConfig

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
    script: dict[str, RoleScriptConfig] = Field(
        {},
        description="what each role says on the simulated engine: exactly one of reply, "
        "template or choice per role; a role not named gets filler text",
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, value: str) -> str:
        """An unknown profile used to pass here and fail in the server after launch."""
        if value not in PROFILES:
            raise ValueError(unknown_name("profile", value, PROFILES))
        return value


class ServiceConfig(Strict):
    engine: Engine = Field(
        "llamacpp",
        description="the LLM server: embedded llama.cpp on CPU, vLLM on GPUs, the simulated "
        "engine, or an existing endpoint",
    )
    model: str | None = Field(None, description="a path or name; engine default when unset")
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
    sticky: bool = Field(
        False, description="a task keeps its replica across turns (prefix-cache reuse)"
    )
    queue_metrics: float = duration(
        0.0, "between scrapes of replicas' /metrics queue depth; 0: off", zero_ok=True
    )
    startup_timeout: float = duration(600.0, "for a replica to start and answer /health")
    url: str | None = Field(None, description="engine: external")
    api_key_env: str | None = Field(None, description="engine: external")
    simulated: SimulatedConfig = SimulatedConfig()
    args: dict[str, Any] = Field({}, description="engine flags passed through (vLLM, llama.cpp)")
    python: str | None = Field(
        None, description="interpreter that runs the engine (its own venv/conda env)"
    )
    env: dict[str, str] = Field({}, description="extra environment of the engine process")


class RoleConfig(Strict):
    kind: Literal["llm", "python", "custom", "sandbox"] = Field(
        "llm",
        description="llm: a prompt to a service; python: a function; custom: an Agent class; "
        "sandbox: a command in the task's sandbox",
    )
    service: str | None = Field(None, description="llm: the service it calls (a key of services)")
    system: str | None = Field(None, description="Jinja template")
    prompt: str | None = Field(None, description="Jinja template: the opening user message")
    dialogue: list[str] = Field([], description="roles whose turns form the chat (own = assistant)")
    params: dict[str, Any] = Field({}, description="sampling params sent to the engine")
    function: str | None = Field(None, description="python: 'module:function'")
    class_: str | None = Field(
        None, alias="class", description="custom: 'module:Class', an Agent subclass"
    )
    options: dict[str, Any] = Field(
        {}, description="passed to a python step (second argument) or a custom agent"
    )
    sets: list[str] = Field(
        [], description="state keys this role's step sets (python, custom): see `check`"
    )
    sandbox: str | None = Field(
        None, description="the task's sandbox this role uses (a key of sandboxes)"
    )
    command: str | None = Field(None, description="sandbox: Jinja template of the command (sh -c)")
    code_from: str | None = Field(
        None, description="sandbox: run the last code block of this role's reply"
    )
    stdin: str | None = Field(None, description="sandbox: Jinja template of the command's input")
    fail_on_limit: bool = Field(
        False, description="sandbox: a limit hit fails the step (else it is only recorded)"
    )


class EdgeConfig(Strict):
    to: str = Field(description="the next role, or END")
    when: str | None = Field(None, description="a condition (Jinja expression); none: always")


class RoutingConfig(Strict):
    kind: Literal["sequential", "graph", "function"] = Field(
        "sequential", description="how the next role is chosen (docs/workflows.md, Routing)"
    )
    order: list[str] = Field([], description="sequential: the roles in order")
    repeat: bool = Field(
        False, description="sequential: start the order again until stop_when holds"
    )
    start: str | None = Field(None, description="graph: the first role")
    edges: dict[str, str | list[EdgeConfig]] = Field(
        {}, description="graph: {role: next role} or {role: [{to, when}, ...]}, tried in order"
    )

    @field_validator("edges", mode="before")
    @classmethod
    def _edges_shape(cls, value: Any) -> Any:
        """A list of ``{from, to}`` is the common first guess: say what the shape is."""
        if isinstance(value, list):
            raise ValueError(
                "edges map each role to its successor: {writer: checker} or "
                "{checker: [{to: reviser, when: 'not state.valid'}, {to: END}]}, not a list"
            )
        return value

    function: str | None = Field(
        None, description="function: 'module:function', fn(task) -> next role or None"
    )
    stop_when: str | None = Field(
        None, description="a condition that ends the task once it holds (after any step)"
    )
    max_steps: int = integer(100, 1, 1_000_000, "steps of one task before it is cut off")
    stop_on_error: bool = Field(True, description="a step that fails ends its task (failed)")


class DatasetConfig(Strict):
    path: str = Field(
        description="a file or a glob (.jsonl, .jsonl.gz, .json, .csv), relative to the config"
    )
    limit: int | None = integer(None, 0, 10**12, "rows read; unset: all")
    trials: int = integer(1, 1, 1_000_000, "tasks per row")
    required: list[str] = Field([], description="fields every row must have")


class OutputConfig(Strict):
    shard_records: int = integer(100_000, 1, 10**9, "records per output shard")
    flush_interval: float = duration(1.0, "between flushes of the output shards", high=3600.0)


class GroupConfig(Strict):
    count: int = integer(1, 1, 100_000, "workers in this group")
    roles: list[str] = Field(description="the roles this group's workers host")


class WorkersConfig(Strict):
    count: int = integer(2, 1, 100_000, "worker processes")
    window: int = integer(256, 1, 1_000_000, "tasks in flight per origin")
    max_active: int = integer(4096, 1, 1_000_000, "tasks stepping at once per worker")
    groups: dict[str, GroupConfig] = Field({}, description="place roles on named worker groups")
    host: str | None = Field(
        None, description="inbox interface; default 127.0.0.1, slurm.bind_host in Slurm jobs"
    )
    durability: Literal["off", "batch", "strict"] = Field(
        "batch", description="journal commits (see README)"
    )
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
    encrypt: bool = Field(
        True, description="CURVE on worker links: only holders of the run's keys connect"
    )

    @field_validator("durability", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``off`` as false: ``durability: off`` must still work."""
        return "off" if value is False else value


class SlurmJobConfig(Strict):
    """Resources of one kind of job (LLM server replicas, or workers)."""

    partition: str | None = Field(None, description="default: slurm.partition")
    account: str | None = Field(None, description="default: slurm.account")
    qos: str | None = Field(None, description="default: slurm.qos")
    time: str | Minutes = Field("1-00:00:00", description="D-HH:MM:SS, HH:MM:SS or minutes")
    nodes: int = integer(1, 1, 100_000, "nodes per job")
    cpus: int = integer(2, 1, 100_000, "CPUs per task")
    mem: str | None = Field(None, description="e.g. '32G'")
    gpus: int | None = integer(None, 0, 1024, "GPUs per node; unset: 1 for vllm servers, else none")
    gres: str | None = Field(None, description="generic resources, e.g. gpu:a100:1")
    constraint: str | None = Field(None, description="node features; default: slurm.constraint")
    exclusive: bool = Field(False, description="whole nodes to these jobs")
    additional: dict[str, Any] = Field(
        {}, description="any other sbatch option, e.g. {reservation: x}"
    )


class ServerJobConfig(SlurmJobConfig):
    cpus: int = integer(4, 1, 100_000, "CPUs per task")


class SlurmConfig(Strict):
    """How `--slurm` submits: one job per LLM replica, one array for the workers
    (mode: jobs), or everything in one multi-node allocation (mode: allocation)."""

    mode: Literal["jobs", "allocation"] = Field(
        "jobs", description="a job per replica and a worker array, or one multi-node allocation"
    )
    partition: str | None = Field(None, description="for every job unless set per kind")
    account: str | None = Field(None, description="for every job unless set per kind")
    qos: str | None = Field(None, description="for every job unless set per kind")
    constraint: str | None = Field(None, description="for every job unless set per kind")
    setup: list[str] = Field(
        [], description="shell lines run first in every job (module load, venv)"
    )
    python: str | None = Field(
        None, description="interpreter on the compute nodes (default: this one)"
    )
    bind_host: str = Field("*", description="interface servers and workers listen on; '*' = all")
    signal_delay_s: int = integer(120, 0, 65_535, "SIGUSR2 this many seconds before the limit")
    array_parallelism: int = integer(256, 1, 100_000, "array tasks running at once")
    shared_nodes: bool = Field(
        False, description="allocation mode: servers and workers on the same nodes"
    )
    servers: ServerJobConfig = ServerJobConfig()
    workers: SlurmJobConfig = SlurmJobConfig()
    additional: dict[str, Any] = Field({}, description="sbatch options for every job")


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
    name: str = Field(
        "run", description="names the run directory (runs/<name>-<timestamp>) and the manifest"
    )
    seed: int = integer(0, INT64_MIN, INT64_MAX, "run seed (64-bit)")
    services: dict[str, ServiceConfig] = Field(
        {}, description="LLM services; each replica is one server process or Slurm job"
    )
    sandboxes: dict[str, SandboxConfig] = Field(
        {}, description="tool sandboxes (bubblewrap or Apptainer pools) roles can run commands in"
    )
    roles: dict[str, RoleConfig] = Field(description="the agents, by name")
    routing: RoutingConfig
    dataset: DatasetConfig
    output: OutputConfig = OutputConfig()
    workers: WorkersConfig = WorkersConfig()
    slurm: SlurmConfig = SlurmConfig()
    run: RunPolicy = RunPolicy()
    # every task starts with this state; conditions and templates may use its keys at once
    state: dict[str, JsonValue] = Field(
        {}, description="every task starts with this state (JSON values)"
    )
    # directories python functions and custom agents are imported from, relative to the
    # config; loading puts the config's own directory first (config/loading.py)
    python_path: list[str] = Field(
        [],
        description="directories user code is imported from, after the config's own",
    )

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
