"""Resolve ``"module:attribute"`` strings from configs into objects, and say where from.

User code (python steps, custom agents, routing functions) is found on the config's
``python_path`` (its own directory first, see ``config/loading.py``), then wherever
Python finds installed packages. Not in the current directory: that is the user's
shell on a laptop, the submission directory of a Slurm job and the script directory
of an exported sbatch script, so a module found there would import in one and not in
the others. :func:`use_python_path` sets this up the same way in every process that
imports user code (``matrixhpc check`` and every worker).
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class ImportProblem(ImportError):
    """A ``module:attribute`` that cannot be resolved; the message says why, in words
    a config's author can act on (no traceback)."""


def use_python_path(directories: Sequence[str]) -> None:
    """Put ``directories`` first on ``sys.path``, in order, and take away the current
    directory that ``python -m`` puts there (unless matrixhpc itself comes from it:
    an uninstalled checkout)."""
    if sys.path and sys.path[0] in ("", os.getcwd()) and not _matrixhpc_in(sys.path[0]):
        del sys.path[0]
    for directory in reversed(directories):
        if directory in sys.path:
            sys.path.remove(directory)
        sys.path.insert(0, directory)
    importlib.invalidate_caches()  # a module written since the last import is found


def _matrixhpc_in(entry: str) -> bool:
    return (Path(entry or ".").resolve() / "matrixhpc" / "__init__.py").is_file()


def import_object(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{spec!r} is not of the form 'module:attribute'")
    obj: Any = _import_module(module_name)
    parts = attr.split(".")
    for i, part in enumerate(parts):
        if not hasattr(obj, part):
            owner = ":".join([module_name, ".".join(parts[:i])]) if i else module_name
            public = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, public, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ImportProblem(f"{owner!r} has no attribute {part!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise ImportProblem(f"no module named {exc.name!r}") from None
        raise ImportProblem(f"importing {name!r} failed: {_where(exc)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001  # user code may raise anything
        raise ImportProblem(f"importing {name!r} failed: {_where(exc)}") from None


def _where(exc: BaseException) -> str:
    """``NameError: name 'x' is not defined (steps.py, line 3)``: the user's own line."""
    what = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"SyntaxError: {exc.msg} ({Path(exc.filename).name}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    outside = [f for f in frames if "importlib" not in f.filename]
    if outside:
        frame = outside[-1]
        return f"{what} ({Path(frame.filename).name}, line {frame.lineno})"
    return what
