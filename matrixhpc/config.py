"""The run configuration: schema, loading, dotted overrides and validation errors.

Everything a run needs is checked here, before a single process starts: unknown
keys (a typo must not silently fall back to a default), references between
sections (a role naming a missing service), templates and conditions that do not
compile. Errors name the dotted key and the reason.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

import jinja2
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Engine = Literal["simulated", "llamacpp", "vllm", "external"]


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` holds (dotted key, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"invalid config:\n{lines}")


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
        problems = _cross_problems(self)
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


_jinja = jinja2.Environment()


def _template_problem(source: str | None, expression: bool = False) -> str | None:
    if source is None:
        return None
    try:
        if expression:
            _jinja.compile_expression(source)
        else:
            _jinja.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"does not compile: {exc.message}"
    return None


def _cross_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for name, role in cfg.roles.items():
        problems += _role_problems(cfg, name, role)
    problems += _routing_problems(cfg)
    problems += _group_problems(cfg)
    for name, svc in cfg.services.items():
        if svc.engine == "external" and not svc.url:
            problems.append((f"services.{name}.url", "engine 'external' needs a url"))
    return problems


def _role_problems(cfg: RunConfig, name: str, role: RoleConfig) -> list[tuple[str, str]]:
    key = f"roles.{name}"
    out: list[tuple[str, str]] = []
    if role.kind == "llm":
        if role.service is None:
            out.append((f"{key}.service", "an llm role needs a service"))
        elif role.service not in cfg.services:
            out.append((f"{key}.service", f"no service named {role.service!r}"))
        if role.prompt is None and not role.dialogue:
            out.append((f"{key}.prompt", "an llm role needs a prompt or a dialogue"))
        for field in ("system", "prompt"):
            bad = _template_problem(getattr(role, field))
            if bad:
                out.append((f"{key}.{field}", bad))
    if role.kind == "python" and not role.function:
        out.append((f"{key}.function", "a python role needs function: 'module:function'"))
    if role.kind == "custom" and not role.class_:
        out.append((f"{key}.class", "a custom role needs class: 'module:Class'"))
    for other in role.dialogue:
        if other not in cfg.roles:
            out.append((f"{key}.dialogue", f"no role named {other!r}"))
    return out


def _routing_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    r = cfg.routing
    out: list[tuple[str, str]] = []
    named = list(r.order) + ([r.start] if r.start else [])
    for src, dst in r.edges.items():
        named.append(src)
        named += [dst] if isinstance(dst, str) else [e.to for e in dst]
        for i, edge in enumerate(dst if isinstance(dst, list) else []):
            bad = _template_problem(edge.when, expression=True)
            if bad:
                out.append((f"routing.edges.{src}.{i}.when", bad))
    for role in named:
        if role not in cfg.roles and role.upper() != "END":
            out.append(("routing", f"no role named {role!r}"))
    if r.kind == "sequential" and not r.order:
        out.append(("routing.order", "sequential routing needs an order"))
    if r.kind == "graph" and not r.start:
        out.append(("routing.start", "graph routing needs a start role"))
    if r.kind == "function" and not r.function:
        out.append(("routing.function", "function routing needs 'module:function'"))
    bad = _template_problem(r.stop_when, expression=True)
    if bad:
        out.append(("routing.stop_when", bad))
    return out


def _group_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    groups = cfg.workers.groups
    if not groups:
        return []
    out: list[tuple[str, str]] = []
    hosted: set[str] = set()
    for name, group in groups.items():
        for role in group.roles:
            if role not in cfg.roles:
                out.append((f"workers.groups.{name}.roles", f"no role named {role!r}"))
        hosted.update(group.roles)
    missing = sorted(set(cfg.roles) - hosted)
    if missing:
        out.append(("workers.groups", f"roles hosted by no group: {', '.join(missing)}"))
    total = sum(g.count for g in groups.values())
    if total != cfg.workers.count:
        out.append(("workers.count", f"is {cfg.workers.count} but the groups add up to {total}"))
    return out


# ---------------------------------------------------------------- loading


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError([(item, "an override is KEY=VALUE, e.g. dataset.limit=20")])
    key, _, raw = item.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError([(key, "empty component in dotted key")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([(key, f"value does not parse: {exc}")]) from exc
    return parts, value


def apply_override(data: dict[str, Any], parts: list[str], value: Any) -> None:
    node = data
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError([(".".join(parts[: i + 1]), "is not a section")])
        node = child
    node[parts[-1]] = value


def _absolutise(data: dict[str, Any], base: Path) -> None:
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        path = Path(dataset["path"]).expanduser()
        dataset["path"] = str(path if path.is_absolute() else (base / path).resolve())


def load_config(path: Path | str, overrides: list[str] = ()) -> RunConfig:  # type: ignore[assignment]
    """Read YAML, apply ``KEY=VALUE`` overrides, validate.

    A relative ``dataset.path`` in the file is relative to the file; one given as
    an override is relative to the current directory (where the user typed it).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}")]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from exc
    if not isinstance(data, dict):
        raise ConfigError([(str(path), "the top level must be a mapping")])
    data.setdefault("name", path.stem)
    _absolutise(data, path.parent.resolve())
    overridden = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        apply_override(overridden, parts, value)
    if overridden.get("dataset", {}).get("path") != data.get("dataset", {}).get("path"):
        _absolutise(overridden, Path.cwd())
    return validate(overridden)


def validate(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(exc)) from None
    except ConfigError:
        raise


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ConfigError):
            problems += ctx_error.problems
            continue
        loc = [str(p) for p in err["loc"] if not _is_union_tag(str(p))]
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            reason = "unknown key" + _suggest(loc)
        problems.append((".".join(loc) or "(top)", reason))
    return _drop_shadowed(problems)


def _is_union_tag(part: str) -> bool:
    """pydantic names the branch of a union in ``loc`` ("str", "list[EdgeConfig]")."""
    return part in ("str", "int", "float", "bool") or part.startswith(
        ("function-", "list[", "dict[")
    )


def _drop_shadowed(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A union reports every branch; keep the deepest (the one the user meant)."""
    keys = [k for k, _ in problems]
    return [(k, r) for k, r in problems if not any(o != k and o.startswith(k + ".") for o in keys)]


def _suggest(loc: list[str]) -> str:
    known = _known_keys(loc[:-1])
    close = difflib.get_close_matches(loc[-1], known, n=1) if loc else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def _known_keys(parent: list[str]) -> list[str]:
    """Field names of the section at ``parent`` (dict sections: their value model)."""
    model: Any = RunConfig
    for part in parent:
        model = _unwrap(model)
        if typing.get_origin(model) in (dict, list):  # part is a user's key or an index
            model = typing.get_args(model)[-1]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    model = _unwrap(model)
    fields = getattr(model, "model_fields", {})
    return [f.alias or n for n, f in fields.items()]


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> X (the first model or dict among a union's members)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        for member in members:
            if hasattr(member, "model_fields") or typing.get_origin(member) in (dict, list):
                return member
        return members[0] if members else tp
    return tp


def dump_config(cfg: RunConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False))
