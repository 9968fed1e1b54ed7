"""``module:attribute`` import strings from configs."""

from __future__ import annotations

import os.path
import sys
from pathlib import Path

import pytest

from matrixhpc.config import RunConfig
from matrixhpc.imports import ImportProblem, import_object, use_python_path
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
    with pytest.raises(ImportProblem, match=r"^no module named 'matrixhpc\.no_such_module'$"):
        import_object("matrixhpc.no_such_module:thing")


def test_missing_attribute_with_a_did_you_mean() -> None:
    with pytest.raises(ImportProblem) as info:
        import_object("matrixhpc.workflows.coral:extract_anwser")
    assert str(info.value) == (
        "'matrixhpc.workflows.coral' has no attribute 'extract_anwser'"
        " (did you mean 'extract_answer'?)"
    )
    with pytest.raises(ImportProblem, match=r"^'os:path' has no attribute 'no_such_attr'"):
        import_object("os:path.no_such_attr")


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("import no_such_dependency_xyz\n", "ModuleNotFoundError: No module named"),
        ("x = 1\nundefined_name\n", "NameError: name 'undefined_name' is not defined"),
        ("def f(:\n", "SyntaxError: "),
        ("raise SystemExit(3)\n", "SystemExit: 3"),
    ],
)
def test_a_module_that_fails_to_import_says_why_and_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, reason: str
) -> None:
    name = f"broken_{abs(hash(source))}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportProblem) as info:
        import_object(f"{name}:f")
    message = str(info.value)
    assert message.startswith(f"importing {name!r} failed: {reason}")
    assert f"({name}.py, line " in message


def test_use_python_path_puts_the_directories_first_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "path", ["/elsewhere", str(tmp_path / "b"), "/site"])
    use_python_path([str(tmp_path / "a"), str(tmp_path / "b")])
    assert sys.path == [str(tmp_path / "a"), str(tmp_path / "b"), "/elsewhere", "/site"]


def test_use_python_path_drops_the_current_directory_python_m_put_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The current directory differs between a laptop, a Slurm job and an exported
    script: a module found only there would import in one and not the others."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "only_here_xyz.py").write_text("def f(task):\n    return None\n")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    use_python_path(["/configs"])
    assert str(tmp_path) not in sys.path
    assert sys.path[0] == "/configs"
    with pytest.raises(ImportProblem, match="no module named 'only_here_xyz'"):
        import_object("only_here_xyz:f")
