"""The sandboxes: section and sandbox roles: strict keys, sizes, references, paths."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from matrixhpc.config import ConfigError, load_config, validate

BASE: dict[str, Any] = {
    "services": {"llm": {"engine": "simulated"}},
    "sandboxes": {"tools": {"limits": {"memory": "512M"}}},
    "roles": {
        "coder": {"kind": "llm", "service": "llm", "prompt": "x"},
        "run": {"kind": "sandbox", "sandbox": "tools", "code_from": "coder"},
    },
    "routing": {"order": ["coder", "run"]},
    "dataset": {"path": "x.jsonl"},
}


def _problems(change: dict[str, Any], where: str) -> list[tuple[str, str]]:
    data = copy.deepcopy(BASE)
    node = data
    *path, last = where.split(".")
    for part in path:
        node = node[part]
    node[last] = change if not isinstance(node.get(last), dict) else {**node[last], **change}
    with pytest.raises(ConfigError) as err:
        validate(data)
    return err.value.problems


def test_a_valid_section_with_sizes_in_bytes() -> None:
    cfg = validate(copy.deepcopy(BASE))
    box = cfg.sandboxes["tools"]
    assert (box.backend, box.pool, box.network) == ("bubblewrap", 4, "none")
    assert box.limits.memory == 512 * 2**20
    assert (
        validate(
            {**copy.deepcopy(BASE), "sandboxes": {"t": {}}}
            | {
                "roles": {"run": {"kind": "sandbox", "sandbox": "t", "command": "ls"}},
                "routing": {"order": ["run"]},
            }
        )
        .sandboxes["t"]
        .limits.memory
        == 2**30
    )


@pytest.mark.parametrize(
    ("where", "change", "key", "words"),
    [
        ("sandboxes.tools", {"netwrk": "host"}, "sandboxes.tools.netwrk", "did you mean"),
        ("sandboxes.tools", {"network": "all"}, "sandboxes.tools.network", "'none' or 'host'"),
        ("sandboxes.tools.limits", {"memory": "lots"}, "sandboxes.tools.limits.memory", "size"),
        ("sandboxes.tools.limits", {"pids": 0}, "sandboxes.tools.limits.pids", "greater"),
        ("sandboxes.tools.limits", {"wall_s": True}, "sandboxes.tools.limits.wall_s", ""),
        ("sandboxes.tools", {"backend": "apptainer"}, "sandboxes.tools.image", "SIF"),
        (
            "sandboxes.tools",
            {"backend": "apptainer", "image": "dir/"},
            "sandboxes.tools.image",
            "never a sandbox directory",
        ),
        ("roles.run", {"sandbox": "tool"}, "roles.run.sandbox", "did you mean 'tools'"),
        ("roles.run", {"code_from": "cdr"}, "roles.run.code_from", "unknown role"),
        ("roles.run", {"command": "{{ oops"}, "roles.run.command", "does not compile"),
        ("roles.coder", {"command": "ls"}, "roles.coder.command", "only for kind: sandbox"),
    ],
)
def test_bad_values_name_the_key(where: str, change: dict[str, Any], key: str, words: str) -> None:
    problems = dict(_problems(change, where))
    assert key in problems, problems
    assert words.lower() in problems[key].lower()


def test_a_sandbox_role_needs_a_sandbox_and_something_to_run() -> None:
    data = copy.deepcopy(BASE)
    data["roles"]["run"] = {"kind": "sandbox"}
    with pytest.raises(ConfigError) as err:
        validate(data)
    keys = dict(err.value.problems)
    assert "roles.run.sandbox" in keys
    assert "roles.run.command" in keys


def test_image_paths_are_relative_to_the_config_or_to_where_an_override_was_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = copy.deepcopy(BASE)
    data["sandboxes"]["tools"].update(backend="apptainer", image="images/t.sif")
    path = tmp_path / "conf" / "c.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data))
    assert load_config(path).sandboxes["tools"].image == str(tmp_path / "conf/images/t.sif")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, ["sandboxes.tools.image=other.sif"])
    assert cfg.sandboxes["tools"].image == str(tmp_path / "other.sif")
