"""Render every template, and evaluate every condition, on the first rows of the dataset.

Each sample task is what admission makes of a row: the initial ``state:``, an empty
history. What that proves depends on who sees it:

- a name missing from the **row** is missing whenever that row runs, for every role:
  reported with the row's fields and a did-you-mean;
- the role that runs **first** (``routing.order[0]``, ``routing.start``) sees exactly
  this task at its first step, so anything its templates lack there (a state key no
  initial value gives, a turn of an empty history) fails every task: reported too;
- other roles run after steps that may set state and add turns: what they lack here
  says nothing, and is left to the static checks (:mod:`.names`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2.utils import missing

from matrixhpc.agents.templates import template_context, template_environment
from matrixhpc.check.probe import Use, recording
from matrixhpc.check.sources import Source
from matrixhpc.config import RunConfig
from matrixhpc.config.bounds import did_you_mean
from matrixhpc.data.readers import Row, RowError, iter_rows
from matrixhpc.routing import condition_environment, condition_names, missing_path
from matrixhpc.task import Task

Problems = list[tuple[str, str]]

#: rows read at most to find the sample (a dataset whose first rows are all bad)
MAX_READ = 100


@dataclass
class Sample:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def sample_rows(cfg: RunConfig, count: int) -> Sample:
    """The first ``count`` valid rows (as admission reads them), and the bad rows met."""
    sample = Sample()
    items = iter_rows(cfg.dataset.path, limit=cfg.dataset.limit, required=cfg.dataset.required)
    for n, item in enumerate(items):
        if isinstance(item, RowError):
            sample.errors.append(item)
        else:
            sample.rows.append(item)
        if len(sample.rows) >= count or n + 1 >= MAX_READ:
            break
    return sample


def sample_task(cfg: RunConfig, row: Row) -> Task:
    """The task admission makes of ``row`` (``runtime/admitter.py``): trial 0, the
    initial state, no history."""
    task = Task(id=f"r{row.index}-t0", seed=0, row=row.data, origin="check")
    task.state["trial"] = 0
    task.start_from(cfg.state)
    return task


def first_role(cfg: RunConfig) -> str | None:
    """The role every task starts with, when the config says (not for function routing)."""
    routing = cfg.routing
    if routing.kind == "sequential":
        return routing.order[0] if routing.order else None
    return routing.start if routing.kind == "graph" else None


@dataclass
class _Missing:
    """One missing path of one source, and the rows it is missing on."""

    use: Use
    rows: list[Row] = field(default_factory=list)


class Renderer:
    """Renders sources on sample tasks with a :class:`~.probe.Probe`, collecting problems."""

    def __init__(self, cfg: RunConfig, known_state: set[str]) -> None:
        self.first = first_role(cfg)
        self.known_state = known_state  # the others are the static check's to report
        self.probe = recording()
        self.envs = {
            "template": template_environment(self.probe),
            "condition": condition_environment(self.probe),
        }
        self.problems: Problems = []
        self.on_rows: dict[tuple[str, str], _Missing] = {}

    def run(self, sources: list[Source], tasks: list[tuple[Row, Task]]) -> Problems:
        for source in sources:
            compiled = self._compile(source)
            for row, task in tasks:
                self._render(source, compiled, row, task)
        for (key, path), found in self.on_rows.items():
            self.problems.append((key, _row_reason(path, found, len(tasks))))
        return list(dict.fromkeys(self.problems))

    def _compile(self, source: Source) -> Callable[[dict[str, Any]], object]:
        """What the run does with the source: render it, or take the truth of it."""
        env = self.envs[source.kind]
        if source.kind == "template":
            return env.from_string(source.text).render
        expr = env.compile_expression(source.text, undefined_to_none=False)
        return lambda names: bool(expr(**names))

    def _render(
        self, source: Source, evaluate: Callable[[dict[str, Any]], object], row: Row, task: Task
    ) -> None:
        names = template_context(task) if source.kind == "template" else condition_names(task)
        self.probe.sink.clear()
        failure: Exception | None = None
        try:
            evaluate(names)
        except jinja2.UndefinedError:
            pass  # recorded by the probe before it raised
        except Exception as exc:  # noqa: BLE001  # a template may raise anything on a row
            failure = exc
        starts = source.role is not None and source.role == self.first
        for use in self.probe.sink:
            self._classify(source, names, use, row, starts)
        if failure is not None and starts and not self.probe.sink:
            reason = (
                f"fails at the task's first step{_on(row)}: {type(failure).__name__}: {failure}"
            )
            self.problems.append((source.key, reason))

    def _classify(
        self, source: Source, names: dict[str, Any], use: Use, row: Row, starts: bool
    ) -> None:
        if use.obj is missing:
            return  # an unknown top-level name: the static check names it once
        path = missing_path(names, use.obj, use.name)
        if path.startswith(("row.", "row[", "task.")):
            found = self.on_rows.setdefault((source.key, path), _Missing(use))
            if row not in found.rows:
                found.rows.append(row)
        elif path.startswith("state."):
            if not starts or path.split(".")[1] not in self.known_state:
                return
            self.problems.append(
                (
                    source.key,
                    f"{path!r} is undefined at the task's first step: roles.{source.role} runs "
                    "first, before any role sets it (give it an initial value in the "
                    "top-level state:)",
                )
            )
        elif starts:
            reason = f"fails at the task's first step (no turns yet): {use.message}"
            self.problems.append((source.key, reason))


def _row_reason(path: str, found: _Missing, checked: int) -> str:
    """``'row.topik' is undefined; row fields: level, topic (did you mean 'topic'?)``,
    with where when only some of the rows checked lack it."""
    where = "" if len(found.rows) == checked else _on_rows(found.rows)
    fields = _fields_of(found.use.obj)
    if not fields:
        return f"{path!r} is undefined{where}"
    owner = path.rsplit(".", 1)[0] if "." in path else path
    label = "row fields" if owner == "row" else f"fields of {owner}"
    hint = did_you_mean(str(found.use.name), fields)
    return f"{path!r} is undefined{where}; {label}: {', '.join(fields)}{hint}"


def _fields_of(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return sorted(str(k) for k in obj)
    if dataclasses.is_dataclass(obj):
        return [f.name for f in dataclasses.fields(obj)]
    return []


def _on(row: Row) -> str:
    return f" on {Path(row.source).name} line {row.line}"


def _on_rows(rows: list[Row]) -> str:
    by_file: dict[str, list[str]] = {}
    for row in rows:
        by_file.setdefault(Path(row.source).name, []).append(str(row.line))
    return " on " + "; ".join(f"{name} line {', '.join(lines)}" for name, lines in by_file.items())


def sample_tasks(cfg: RunConfig, sample: Sample) -> Iterator[tuple[Row, Task]]:
    for row in sample.rows:
        yield row, sample_task(cfg, row)
