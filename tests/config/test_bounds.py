"""Config bounds: strict counts in a range, finite durations, known profile names.

Each rejected value used to validate and fail later (a traceback after launch, a
launcher asked for 10**30 workers, a timer of ``inf`` seconds).
"""

from __future__ import annotations

import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from matrixhpc.build import client_policies
from matrixhpc.config import ConfigError, RunConfig, load_config
from matrixhpc.llm.engines.simulated.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "configs" / "hello.yaml"
BIG = "1" + "0" * 30  # 10**30


def _reason(overrides: list[str], key: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(HELLO, overrides)
    problems = dict(info.value.problems)
    assert key in problems, info.value.problems
    return problems[key]


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        (f"workers.count={BIG}", "less than or equal to 100000"),
        ("workers.count=true", "valid integer (got true)"),
        ("workers.count=2.0", "valid integer"),
        ("workers.count='3'", "valid integer (got '3')"),
        ("services.llm.replicas=1000000000000", "less than or equal to 10000"),
        ("services.llm.replicas=false", "valid integer (got false)"),
        ("services.llm.max_concurrency=0", "greater than or equal to 1"),
        ("services.llm.max_retries=-1", "greater than or equal to 0"),
        ("services.llm.timeout=.inf", "finite number (got .inf)"),
        ("services.llm.timeout=.nan", "finite number (got .nan)"),
        ("services.llm.timeout=-1", "greater than 0"),
        ("services.llm.timeout=true", "valid number (got true)"),
        ("services.llm.startup_timeout=-.inf", "finite number (got -.inf)"),
        ("services.llm.replica_wait=.inf", "finite number"),
        ("services.llm.replica_wait=0", "greater than 0"),
        ("services.llm.queue_metrics=-0.5", "greater than or equal to 0"),
        ("services.llm.simulated.time_scale=.nan", "finite number"),
        ("workers.lease=.inf", "finite number"),
        ("workers.lease=1e9", "got '1e9'"),  # YAML 1.1 reads 1e9 as a string
        ("workers.ack_timeout=0", "greater than 0"),
        ("workers.commit_interval=.inf", "finite number"),
        ("workers.window=0", "greater than or equal to 1"),
        ("workers.max_active=true", "valid integer"),
        ("workers.restarts=-1", "greater than or equal to 0"),
        ("workers.journal_segment_mb=100000", "less than or equal to 4096"),
        ("output.flush_interval=.inf", "finite number"),
        ("output.shard_records=0", "greater than or equal to 1"),
        ("dataset.limit=-1", "greater than or equal to 0"),
        ("dataset.limit=true", "valid integer"),
        ("dataset.trials=true", "valid integer"),
        ("routing.max_steps=0", "greater than or equal to 1"),
        ("seed=18446744073709551616", "less than or equal to 9223372036854775807"),
        ("seed=true", "valid integer"),
        ("slurm.signal_delay_s=70000", "less than or equal to 65535"),
        ("slurm.array_parallelism=0", "greater than or equal to 1"),
        ("slurm.servers.gpus=true", "valid integer"),
        ("slurm.workers.cpus=0", "greater than or equal to 1"),
        ("slurm.workers.nodes=true", "valid integer"),
        ("slurm.workers.time=0", "greater than or equal to 1"),
    ],
)
def test_out_of_bounds_value_is_named_with_the_reason(override: str, reason: str) -> None:
    key = override.partition("=")[0]
    assert reason in _reason([override], key)


def test_group_count_is_bounded_too() -> None:
    groups = "{a: {count: true, roles: [writer, editor]}}"
    reason = _reason([f"workers.groups={groups}", "workers.count=1"], "workers.groups.a.count")
    assert "valid integer (got true)" in reason


def test_several_bad_values_are_reported_together() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(HELLO, ["workers.count=true", "services.llm.timeout=.inf", f"seed={BIG}"])
    keys = [key for key, _ in info.value.problems]
    assert sorted(keys) == ["seed", "services.llm.timeout", "workers.count"]


@pytest.mark.parametrize(
    "override",
    [
        "workers.count=100000",
        "services.llm.replicas=10000",
        "services.llm.timeout=1",  # an integer number of seconds is fine
        "services.llm.queue_metrics=0",
        "services.llm.simulated.time_scale=0",
        "workers.commit_interval=0",
        "services.llm.max_retries=0",
        "seed=-1",
        "dataset.limit=0",
        "slurm.workers.time=90",
        "slurm.workers.time=2-00:00:00",
        "slurm.servers.gpus=0",
    ],
)
def test_values_at_the_edges_are_accepted(override: str) -> None:
    load_config(HELLO, [override])


def test_unknown_profile_names_the_key_suggests_and_lists() -> None:
    reason = _reason(
        ["services.llm.simulated.profile=h100-llama3-8b"], "services.llm.simulated.profile"
    )
    assert reason.startswith("unknown profile 'h100-llama3-8b'")
    assert "did you mean 'h100-llama3.1-8b'?" in reason
    assert all(name in reason for name in PROFILES)
    assert "Value error" not in reason


def test_unknown_profile_without_a_close_match_lists_the_known_ones() -> None:
    reason = _reason(["services.llm.simulated.profile=tpu"], "services.llm.simulated.profile")
    assert "did you mean" not in reason
    assert "known: " in reason


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_known_profile_is_accepted(name: str) -> None:
    cfg = load_config(HELLO, [f"services.llm.simulated.profile={name}"])
    assert cfg.services["llm"].simulated.profile == name


def test_replica_wait_defaults_to_an_hour_and_reaches_the_client_policy() -> None:
    cfg = load_config(HELLO)
    assert cfg.services["llm"].replica_wait == 3600.0
    assert client_policies(cfg)["llm"].wait_for_replica == 3600.0
    cfg = load_config(HELLO, ["services.llm.replica_wait=90"])
    assert client_policies(cfg)["llm"].wait_for_replica == 90.0


# ------------------------------------------------------------------ every field


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    seen.add(model)
    for field in model.model_fields.values():
        for arg in _flatten(field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in seen:
                _models(arg, seen)
    return seen


def _flatten(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType, dict, list):
        return [leaf for arg in typing.get_args(tp) for leaf in _flatten(arg)]
    return [tp]


def _numeric_fields() -> list[tuple[str, Any, list[Any]]]:
    out = []
    for model in sorted(_models(RunConfig, set()), key=lambda m: m.__name__):
        for name, field in model.model_fields.items():
            leaves = set(_flatten(field.annotation)) - {type(None)}
            if leaves & {int, float}:
                out.append((f"{model.__name__}.{name}", leaves, field.metadata))
    return out


def test_every_number_in_the_schema_is_strict_and_bounded() -> None:
    """A new count or duration added without bounds fails here, not in a user's run."""
    fields = _numeric_fields()
    assert len(fields) > 25  # the walk found the schema
    for where, leaves, metadata in fields:
        kinds = {type(m).__name__ for m in metadata}
        assert "Strict" in kinds, f"{where} is not strict"
        assert kinds & {"Ge", "Gt"}, f"{where} has no lower bound"
        assert "Le" in kinds, f"{where} has no upper bound"
        if float in leaves:
            assert "AllowInfNan" in kinds, f"{where} accepts inf/nan"


# ------------------------------------------------------------------ the CLI


@pytest.mark.parametrize(
    "override",
    ["workers.count=true", "services.llm.timeout=.inf", "services.llm.simulated.profile=h200"],
)
def test_cli_exits_2_before_launching(override: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "matrixhpc", "run", str(HELLO), override]
    cmd += ["--local", "--engine", "simulated", "--run-dir", str(run_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert override.partition("=")[0] in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not run_dir.exists()  # nothing started
