"""The user code a config names: it imports, it is what the role needs, it can be called.

Each ``function:`` and ``class:`` is imported the way a worker will import it (from the
config's ``python_path``, :func:`matrixhpc.imports.use_python_path`), so a module that
does not import, a missing attribute, a class that is not an Agent or a function that
cannot be called the way the role calls it is reported here, with the key, before
any process starts — not as a worker that restarts three times with a traceback.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from matrixhpc.agents.base import Agent
from matrixhpc.agents.python import takes_options
from matrixhpc.config import RunConfig
from matrixhpc.imports import ImportProblem, import_object

Problems = list[tuple[str, str]]


Judge = Callable[[Any, str], "str | None"]


def code_problems(cfg: RunConfig) -> tuple[Problems, int]:
    """(problems, how many objects imported). ``sys.path`` must already be set up."""
    out: Problems = []
    named = _named_code(cfg)
    for key, spec, judge in named:
        problem = _load(cfg, spec, judge)
        if problem is not None:
            out.append((key, problem))
    return out, len(named) - len(out)


def _named_code(cfg: RunConfig) -> list[tuple[str, str, Judge]]:
    """(key, ``module:attribute``, what it must be) for every piece of user code."""
    named: list[tuple[str, str, Judge]] = []
    for name, role in cfg.roles.items():
        if role.kind == "python" and role.function:
            named.append((f"roles.{name}.function", role.function, _step_problem))
        elif role.kind == "custom" and role.class_:
            named.append((f"roles.{name}.class", role.class_, _agent_problem))
    if cfg.routing.kind == "function" and cfg.routing.function:
        named.append(("routing.function", cfg.routing.function, _router_problem))
    return named


def _load(cfg: RunConfig, spec: str, judge: Judge) -> str | None:
    try:
        obj = import_object(spec)
    except ImportProblem as exc:
        where = f" (searched python_path: {', '.join(cfg.python_path)}, then installed packages)"
        return f"cannot import {spec!r}: {exc}" + (where if "no module named" in str(exc) else "")
    except ValueError as exc:  # not module:attribute
        return str(exc)
    return judge(obj, spec)


def _router_problem(fn: Any, spec: str) -> str | None:
    return _callable_problem(fn, spec, (None,), "fn(task)")


def _step_problem(fn: Any, spec: str) -> str | None:
    """A python step is called ``fn(task)`` or, taking two arguments, ``fn(task, options)``."""
    try:
        args: tuple[None, ...] = (None, None) if takes_options(fn) else (None,)
    except (TypeError, ValueError):  # not callable, or no signature to read (a builtin)
        args = (None,)
    return _callable_problem(fn, spec, args, "fn(task, options)" if len(args) == 2 else "fn(task)")


def _callable_problem(fn: Any, spec: str, args: tuple[None, ...], call: str) -> str | None:
    if not callable(fn):
        return f"{spec!r} is not a function (it is {type(fn).__name__})"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    try:
        signature.bind(*args)
    except TypeError as exc:
        return f"{spec}{signature} cannot be called as {call}: {exc}"
    return None


def _agent_problem(cls: Any, spec: str) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Agent)):
        what = cls.__name__ if isinstance(cls, type) else type(cls).__name__
        return (
            f"{spec!r} is not an Agent subclass (it is {what}): a custom role's class "
            "derives from matrixhpc.agents.Agent"
        )
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{spec!r} does not implement {missing}: async def __call__(self, task, ctx)"
    return _callable_problem(cls, spec, (None, None), "Class(name, options)")
