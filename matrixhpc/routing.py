"""Routers decide which role handles a task next. Pure: no I/O, no clocks.

A router runs inside whichever worker just ran a step, so that no central
orchestrator sees every hop. ``first`` picks the opening role; ``after`` is
called once a step has been appended to the history (``task.next`` still names
the role that just ran) and returns the next role or :data:`END`.

Conditions (``stop_when``, graph edge ``when``) are Jinja expressions over
``task``, ``row``, ``state``, ``history`` and ``last`` (the last turn). They are strict:
a name the task does not have (``state.vaild``, a key no step has set yet) raises
:class:`RoutingError`, which fails that task with the condition and the name, instead
of counting as false and ending the task early as if it had succeeded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

import jinja2
from jinja2.utils import consume, missing

from matrixhpc.task import END, Task

#: The names a condition sees (:func:`condition_names`).
CONDITION_NAMES = ("task", "row", "state", "history", "last")


class RoutingError(Exception):
    """A condition that cannot be evaluated on a task: that task's error, not a false."""


class MissingName(jinja2.UndefinedError):
    """What a strict template or condition used and did not have: ``name`` of ``obj``
    (``obj`` is jinja's ``missing`` for an unknown top-level name)."""

    def __init__(self, obj: Any, name: Any, message: str) -> None:
        super().__init__(message)
        self.obj = obj
        self.name = name


class NamedUndefined(jinja2.StrictUndefined):
    """StrictUndefined whose error says which object lacked which name, so that the
    task's error can name ``state.vaild`` rather than "'dict object' has no attribute"."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[jinja2.TemplateRuntimeError] = jinja2.UndefinedError,  # noqa: ARG002
    ) -> None:
        super().__init__(hint, obj, name, functools.partial(MissingName, obj, name))  # type: ignore[arg-type]


def condition_environment(undefined: type[jinja2.Undefined] = NamedUndefined) -> jinja2.Environment:
    """The environment conditions compile in (``matrixhpc check`` probes with its own
    ``undefined``). Strict by default: any use of a key the task lacks raises, where
    jinja's lenient Undefined would make ``not state.pending`` true."""
    return jinja2.Environment(undefined=undefined)


_env = condition_environment()


def condition_names(task: Task) -> dict[str, Any]:
    """What a condition sees: :data:`CONDITION_NAMES`, ``last`` being the last turn."""
    return {
        "task": task,
        "row": task.row,
        "state": task.state,
        "history": task.history,
        "last": task.last_turn() or {},
    }


def missing_path(names: dict[str, Any], obj: Any, name: Any) -> str:
    """The dotted path of what was missing: ``state.vaild``, ``row.meta.source``,
    ``row.options[7]``; just ``name`` for an unknown top-level name (``stat``), and
    ``(int object).x`` under a value that is no container of the task's."""
    if obj is missing:
        return str(name)
    step = f".{name}" if isinstance(name, str) else f"[{name!r}]"
    owner = _path_to(names, obj) if isinstance(obj, dict | list | Task) else None
    return (owner or f"({jinja2.utils.object_type_repr(obj)})") + step


def _path_to(names: dict[str, Any], obj: Any, depth: int = 4) -> str | None:
    """Where ``obj`` sits among ``names`` (by identity), breadth first, a few levels deep."""
    level: list[tuple[str, Any]] = list(names.items())
    for _ in range(depth):
        for path, value in level:
            if value is obj:
                return path
        level = [
            (f"{path}.{k}" if isinstance(value, dict) else f"{path}[{k}]", v)
            for path, value in level
            if isinstance(value, dict | list)
            for k, v in (value.items() if isinstance(value, dict) else enumerate(value))
        ]
    return None


class Router(Protocol):
    def first(self, task: Task) -> str: ...

    def after(self, task: Task) -> str: ...


Condition = Callable[[Task], bool]


def compile_condition(source: str, key: str = "condition") -> Condition:
    """A strict condition; ``key`` (its place in the config, ``routing.stop_when``)
    names it in the :class:`RoutingError` of a task it cannot be evaluated on."""
    expr = _env.compile_expression(source, undefined_to_none=False)
    template = getattr(expr, "_template", None)

    def evaluate(names: dict[str, Any]) -> Any:
        if template is None:  # a jinja without the fast path
            return expr(**names)
        # a shared context skips merging jinja's globals on every call: half the cost
        # of a condition, which is evaluated after every step of every task
        context = template.new_context(names, shared=True)
        consume(template.root_render_func(context))
        return context.vars.get("result")

    def check(task: Task) -> bool:
        names = condition_names(task)
        try:
            return bool(evaluate(names))
        except MissingName as exc:
            missing_name = missing_path(names, exc.obj, exc.name)
            raise RoutingError(f"{key} {source!r}: {missing_name!r} is undefined") from None
        except Exception as exc:  # noqa: BLE001  # "state.turns >= 'x'": the task's error
            raise RoutingError(f"{key} {source!r}: {type(exc).__name__}: {exc}") from None

    return check


def _failed(task: Task) -> bool:
    last = task.last_turn()
    return bool(last and last.get("error"))


class _Stops:
    """What every router shares: end on error, on a condition, or on a step budget."""

    def __init__(self, stop_when: str | None, max_steps: int, stop_on_error: bool) -> None:
        self.stop_when = compile_condition(stop_when, "routing.stop_when") if stop_when else None
        self.max_steps = max_steps
        self.stop_on_error = stop_on_error

    def should_stop(self, task: Task) -> bool:
        """The task is done: it failed (``stop_on_error``) or ``stop_when`` holds."""
        if self.stop_on_error and _failed(task):
            return True
        return bool(self.stop_when and self.stop_when(task))

    def cut_off(self, task: Task, target: str) -> str:
        """``target``, unless the task has used its ``max_steps`` before reaching its end:
        then END, and the record says so (``ended: "max_steps"``: written ``ok``, but
        not concluded the way the workflow meant)."""
        if target != END and task.hop >= self.max_steps:
            task.ended = "max_steps"
            return END
        return target


class SequentialRouter(_Stops):
    """A fixed order of roles, once or cyclically (``repeat``)."""

    def __init__(
        self,
        order: list[str],
        *,
        repeat: bool = False,
        stop_when: str | None = None,
        max_steps: int = 100,
        stop_on_error: bool = True,
    ) -> None:
        super().__init__(stop_when, max_steps, stop_on_error)
        self.order = order
        self.repeat = repeat

    def first(self, task: Task) -> str:  # noqa: ARG002  # Router protocol's signature
        return self.order[0]

    def after(self, task: Task) -> str:
        if self.should_stop(task):
            return END
        if not self.repeat and task.hop >= len(self.order):
            return END
        return self.cut_off(task, self.order[task.hop % len(self.order)])


class GraphRouter(_Stops):
    """Edges from each role: a fixed successor or a list of (condition, successor)."""

    def __init__(
        self,
        start: str,
        edges: dict[str, list[tuple[Condition | None, str]]],
        *,
        stop_when: str | None = None,
        max_steps: int = 100,
        stop_on_error: bool = True,
    ) -> None:
        super().__init__(stop_when, max_steps, stop_on_error)
        self.start = start
        self.edges = edges

    def first(self, task: Task) -> str:  # noqa: ARG002  # Router protocol's signature
        return self.start

    def after(self, task: Task) -> str:
        if self.should_stop(task):
            return END
        for condition, target in self.edges.get(task.next, []):
            if condition is None or condition(task):
                return self.cut_off(task, END if target.upper() == "END" else target)
        return END


class FunctionRouter(_Stops):
    """A user function ``fn(task) -> role | None``; None (or "END") ends the task."""

    def __init__(
        self, fn: Callable[[Task], str | None], *, max_steps: int = 100, stop_on_error: bool = True
    ) -> None:
        super().__init__(None, max_steps, stop_on_error)
        self.fn = fn

    def _call(self, task: Task) -> str:
        role = self.fn(task)
        return END if role is None or role.upper() == "END" else role

    def first(self, task: Task) -> str:
        return self._call(task)

    def after(self, task: Task) -> str:
        return END if self.should_stop(task) else self.cut_off(task, self._call(task))


def graph_edges(raw: dict[str, Any]) -> dict[str, list[tuple[Condition | None, str]]]:
    """Compile config edges (a role name, or a list of ``{when, to}``); each condition is
    named by its config key (``routing.edges.critic.0.when``) in a task's error."""
    edges: dict[str, list[tuple[Condition | None, str]]] = {}
    for src, dst in raw.items():
        if isinstance(dst, str):
            edges[src] = [(None, dst)]
            continue
        edges[src] = []
        for i, edge in enumerate(dst):
            when = edge.get("when")
            condition = compile_condition(when, f"routing.edges.{src}.{i}.when") if when else None
            edges[src].append((condition, edge["to"]))
    return edges
