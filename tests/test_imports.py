"""``module:attribute`` import strings from configs."""

from __future__ import annotations

import os.path
from pathlib import Path

import pytest

from matrixhpc.config import RunConfig
from matrixhpc.imports import import_object
from matrixhpc.workflows import coral


def test_module_attribute() -> None:
    assert import_object("os.path:join") is os.path.join
    assert import_object("matrixhpc.workflows.coral:extract_answer") is coral.extract_answer


def test_dotted_attribute_path() -> None:
    assert import_object("matrixhpc.config:RunConfig.group_of") is RunConfig.group_of
    assert import_object("os:path.join") is os.path.join


def test_imports_a_module_not_yet_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_steps_mod_xyz.py").write_text("def step(task):\n    return {'x': 1}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = import_object("my_steps_mod_xyz:step")
    assert fn(None) == {"x": 1}


@pytest.mark.parametrize(
    "spec", ["os.path.join", "os.path:", ":join", "", ":", "matrixhpc.workflows.coral"]
)
def test_malformed_spec_is_a_value_error_naming_it(spec: str) -> None:
    with pytest.raises(ValueError, match="module:attribute") as info:
        import_object(spec)
    assert repr(spec) in str(info.value)


def test_missing_module() -> None:
    with pytest.raises(ModuleNotFoundError):
        import_object("matrixhpc.no_such_module:thing")


def test_missing_attribute() -> None:
    with pytest.raises(AttributeError, match="no_such_fn"):
        import_object("matrixhpc.workflows.coral:no_such_fn")
    with pytest.raises(AttributeError):
        import_object("os:path.no_such_attr")
