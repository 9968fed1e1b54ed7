"""Loading a config: YAML, ``KEY=VALUE`` overrides, and validation errors people can act on.

pydantic's errors are rewritten as (dotted key, reason) pairs; an unknown key
gets the closest known key as a suggestion ("did you mean 'window'?"), and a
rejected value is quoted back as the user wrote it ("(got true)", "(got .inf)").
"""

from __future__ import annotations

import copy
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from .bounds import did_you_mean
from .errors import ConfigError
from .schema import RunConfig


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
    """Paths relative to the config file: the dataset's and the sandboxes' images."""
    dataset = data.get("dataset")
    if isinstance(dataset, dict) and isinstance(dataset.get("path"), str):
        dataset["path"] = _resolved(dataset["path"], base)
    sandboxes = data.get("sandboxes")
    for box in sandboxes.values() if isinstance(sandboxes, dict) else ():
        if isinstance(box, dict) and isinstance(box.get("image"), str):
            box["image"] = _resolved(box["image"], base)


def _absolutise_images(overridden: dict[str, Any], data: dict[str, Any], cwd: Path) -> None:
    """A sandbox image given as an override is relative to where the user typed it."""
    boxes, before = overridden.get("sandboxes"), data.get("sandboxes")
    if not isinstance(boxes, dict):
        return
    for name, box in boxes.items():
        old = before.get(name) if isinstance(before, dict) else None
        image = box.get("image") if isinstance(box, dict) else None
        if isinstance(image, str) and (not isinstance(old, dict) or old.get("image") != image):
            box["image"] = _resolved(image, cwd)


def _resolved(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _absolutise_python_path(data: dict[str, Any], base: Path) -> None:
    """Entries of ``python_path`` relative to ``base`` become absolute (anything that is
    not a list of strings is left for validation to name)."""
    entries = data.get("python_path")
    if isinstance(entries, list) and all(isinstance(e, str) for e in entries):
        data["python_path"] = [str((base / Path(e).expanduser()).resolve()) for e in entries]


def _config_dir_first(data: dict[str, Any], config_dir: Path) -> None:
    """The config's own directory is searched first, whatever ``python_path`` adds."""
    entries = data.get("python_path", [])
    if isinstance(entries, list):
        data["python_path"] = list(dict.fromkeys([str(config_dir), *entries]))


def load_config(
    path: Path | str,
    overrides: list[str] = (),  # type: ignore[assignment]
    *,
    resolved: bool = False,
) -> RunConfig:
    """Read YAML, apply ``KEY=VALUE`` overrides, validate.

    A relative ``dataset.path`` or ``python_path`` entry in the file is relative to
    the file; one given as an override is relative to the current directory (where the
    user typed it). The config's directory goes first on ``python_path``, except in a
    ``resolved`` config (a run directory's ``config.yaml``, written with its paths
    already resolved: its own directory is the run's, not the user's).
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
    config_dir = path.parent.resolve()
    _absolutise(data, config_dir)
    _absolutise_python_path(data, config_dir)
    overridden = copy.deepcopy(data)
    for item in overrides:
        parts, value = parse_override(item)
        apply_override(overridden, parts, value)
    if overridden.get("dataset", {}).get("path") != data.get("dataset", {}).get("path"):
        _absolutise(overridden, Path.cwd())
    if overridden.get("python_path") != data.get("python_path"):
        _absolutise_python_path(overridden, Path.cwd())
    if not resolved:
        _config_dir_first(overridden, config_dir)
    _absolutise_images(overridden, data, Path.cwd())
    return validate(overridden)


def validate(data: dict[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc)) from None
    except ConfigError:
        raise


def pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(dotted key, reason) for each of pydantic's errors (keys from the model's root)."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ConfigError):
            problems += ctx_error.problems
            continue
        loc = [str(p) for p in err["loc"] if not _is_union_tag(str(p))]
        problems.append((".".join(loc) or "(top)", _reason(err, loc)))
    return _merge_branches(_drop_shadowed(problems))


def _reason(err: ErrorDetails, loc: list[str]) -> str:
    """pydantic's message, made actionable: a suggestion, the offending value."""
    if err["type"] == "extra_forbidden":
        return "unknown key" + _suggest(loc)
    ctx_error = (err.get("ctx") or {}).get("error")
    if err["type"] == "value_error" and ctx_error is not None:
        return str(ctx_error)  # our own validators' words, without "Value error, "
    shown = _shown(err.get("input"))
    return f"{err['msg']} (got {shown})" if shown else err["msg"]


def _shown(value: Any) -> str:
    """A scalar the user wrote, spelled as in YAML (``true``, ``.inf``); '' otherwise."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return {"inf": ".inf", "-inf": "-.inf"}.get(str(value), ".nan")
    if isinstance(value, int | float | str):
        text = repr(value) if isinstance(value, str) else str(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return ""


def _is_union_tag(part: str) -> bool:
    """pydantic names the branch of a union in ``loc`` ("str", "list[EdgeConfig]")."""
    return part in ("str", "int", "float", "bool") or part.startswith(
        ("function-", "list[", "dict[", "constrained-")
    )


def _drop_shadowed(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A union reports every branch; keep the deepest (the one the user meant)."""
    keys = [k for k, _ in problems]
    return [(k, r) for k, r in problems if not any(o != k and o.startswith(k + ".") for o in keys)]


def _merge_branches(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Branches of one union that fail at the same key: one line, "a; or b"."""
    merged: dict[str, list[str]] = {}
    for key, reason in problems:
        reasons = merged.setdefault(key, [])
        if reason not in reasons:
            reasons.append(reason)
    return [(key, "; or ".join(reasons)) for key, reasons in merged.items()]


def _suggest(loc: list[str]) -> str:
    return did_you_mean(loc[-1], _known_keys(loc[:-1])) if loc else ""


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
