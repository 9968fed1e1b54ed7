"""Routers decide which role handles a task next. Pure: no I/O, no clocks.

A router runs inside whichever worker just ran a step, so that no central
orchestrator sees every hop. ``first`` picks the opening role; ``after`` is
called once a step has been appended to the history (``task.next`` still names
the role that just ran) and returns the next role or :data:`END`.

Conditions (``stop_when``, graph edge ``when``) are Jinja expressions over
``task``, ``row``, ``state``, ``history`` and ``last`` (the last turn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jinja2
from jinja2.utils import consume

from matrixhpc.task import END, Task

# Strict: any use of a key the workflow has not set yet ("not state.pending",
# "state.verdict != 'retry'") raises, and the condition counts as false, instead of
# jinja's lenient Undefined making it true and ending the task at once.
_env = jinja2.Environment(undefined=jinja2.StrictUndefined)


class Router(Protocol):
    def first(self, task: Task) -> str: ...

    def after(self, task: Task) -> str: ...


Condition = Callable[[Task], bool]


def compile_condition(source: str) -> Condition:
    expr = _env.compile_expression(source)
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
        # a key the workflow has not set yet ("state.turns" before the first turn)
        # makes the condition false rather than failing the task
        names = {
            "task": task,
            "row": task.row,
            "state": task.state,
            "history": task.history,
            "last": task.last_turn() or {},
        }
        try:
            return bool(evaluate(names))
        except jinja2.UndefinedError:
            return False

    return check


def _failed(task: Task) -> bool:
    last = task.last_turn()
    return bool(last and last.get("error"))


class _Stops:
    """What every router shares: end on error, on a condition, or on a step budget."""

    def __init__(self, stop_when: str | None, max_steps: int, stop_on_error: bool) -> None:
        self.stop_when = compile_condition(stop_when) if stop_when else None
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
    """Compile config edges (a role name, or a list of ``{when, to}``)."""
    edges: dict[str, list[tuple[Condition | None, str]]] = {}
    for src, dst in raw.items():
        if isinstance(dst, str):
            edges[src] = [(None, dst)]
            continue
        edges[src] = [
            (compile_condition(e["when"]) if e.get("when") else None, e["to"]) for e in dst
        ]
    return edges
