"""``matrixhpc check``: every mistake a config can hold that shows before anything runs.

The config's validation (``matrixhpc.config``) has already checked keys, values,
references between sections and that every template compiles. This goes further,
at the cost of importing the user's code and reading the first rows of the data:

- :mod:`.code`: every ``function:`` and ``class:`` imports and fits its role;
- :mod:`.names`: no template or condition uses a name that can never exist;
- :mod:`.rendering`: templates and conditions on the first rows of the dataset;
- :mod:`.graph`: every role runs, every task can end.

``run`` and ``sbatch`` run it too, before they create or launch anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from matrixhpc.check.code import code_problems
from matrixhpc.check.graph import graph_problems
from matrixhpc.check.names import known_state_keys, name_problems
from matrixhpc.check.rendering import Renderer, sample_rows, sample_tasks
from matrixhpc.check.sources import jinja_sources
from matrixhpc.config import RunConfig
from matrixhpc.imports import use_python_path

#: rows of the dataset every template is rendered on
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class Report:
    problems: list[tuple[str, str]]
    summary: str  # one line, for a clean config


def check_config(cfg: RunConfig, rows: int = SAMPLE_ROWS) -> Report:
    """Every problem of ``cfg`` as (key, reason); imports the config's user code."""
    use_python_path(cfg.python_path)
    problems, imported = code_problems(cfg)
    sources = jinja_sources(cfg)
    problems += name_problems(cfg, sources)
    sample = sample_rows(cfg, rows)
    if not sample.rows and sample.errors:
        first = sample.errors[0]
        problems.append(
            (
                "dataset",
                f"none of the first {len(sample.errors)} rows is valid: {first.reason} "
                f"({first.source} line {first.line})",
            )
        )
    problems += Renderer(cfg, known_state_keys(cfg)).run(sources, list(sample_tasks(cfg, sample)))
    problems += graph_problems(cfg)
    templates = sum(s.kind == "template" for s in sources)
    summary = (
        f"{_count(len(cfg.roles), 'role')}, {cfg.routing.kind} routing, "
        f"{_count(imported, 'python object')} imported, {_count(templates, 'template')} "
        f"rendered on {_count(len(sample.rows), 'row')}, "
        f"{_count(len(sources) - templates, 'condition')}: no problems"
    )
    return Report(_grouped(problems), summary)


def _grouped(problems: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Once each, those of one key together, keys in the order they were first found."""
    unique = list(dict.fromkeys(problems))
    order = {key: i for i, key in reversed(list(enumerate(k for k, _ in unique)))}
    return sorted(unique, key=lambda problem: order[problem[0]])


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
