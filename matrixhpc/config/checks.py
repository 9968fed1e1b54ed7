"""Checks that span sections: references between them, templates that must compile.

Run by :class:`~matrixhpc.config.schema.RunConfig`'s validator, so a config that
names a missing service or has a broken Jinja condition is rejected before any
process starts, with the dotted key of each problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jinja2
from jinja2 import nodes
from jinja2.parser import Parser

from .bounds import did_you_mean, unknown_name
from .sandboxes import sandbox_problems

if TYPE_CHECKING:
    from .schema import RoleConfig, RunConfig

Problems = list[tuple[str, str]]

_jinja = jinja2.Environment()

# jinja reads an operator with nothing after it ("not state.valid and and") as a variable
# of that name: a broken expression that compiles, always undefined at run time
_OPERATORS = frozenset({"and", "or", "not", "in", "is", "if", "else"})


def _template_problem(source: str | None, expression: bool = False) -> str | None:
    if source is None:
        return None
    try:
        if expression:
            _jinja.compile_expression(source)
            tree: nodes.Node = Parser(_jinja, source, state="variable").parse_expression()
        else:
            tree = _jinja.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return f"does not compile: {exc.message}"
    stray = next((n.name for n in tree.find_all(nodes.Name) if n.name in _OPERATORS), None)
    if stray is not None:
        return f"does not compile: {stray!r} where a value is expected"
    return None


def cross_problems(cfg: RunConfig) -> Problems:
    problems: list[tuple[str, str]] = []
    for name, role in cfg.roles.items():
        problems += _role_problems(cfg, name, role)
    problems += _routing_problems(cfg)
    problems += _group_problems(cfg)
    problems += _script_problems(cfg)
    problems += sandbox_problems(cfg)
    for name, svc in cfg.services.items():
        if svc.engine == "external" and not svc.url:
            problems.append((f"services.{name}.url", "engine 'external' needs a url"))
    if "trial" in cfg.state:
        problems.append(("state.trial", "is set by matrixhpc: the task's trial number"))
    return problems


def _role_problems(cfg: RunConfig, name: str, role: RoleConfig) -> list[tuple[str, str]]:
    key = f"roles.{name}"
    out = _llm_role_problems(cfg, key, role) if role.kind == "llm" else []
    if role.kind == "python" and not role.function:
        out.append((f"{key}.function", "a python role needs function: 'module:function'"))
    if role.kind == "custom" and not role.class_:
        out.append((f"{key}.class", "a custom role needs class: 'module:Class'"))
    for other in role.dialogue:
        if other not in cfg.roles:
            out.append((f"{key}.dialogue", f"no role named {other!r}"))
    return out


def _llm_role_problems(cfg: RunConfig, key: str, role: RoleConfig) -> Problems:
    """An llm role needs an existing service, something to say, and templates that compile."""
    out: Problems = []
    if role.service is None:
        out.append((f"{key}.service", "an llm role needs a service"))
    elif role.service not in cfg.services:
        out.append((f"{key}.service", f"no service named {role.service!r}"))
    if role.prompt is None and not role.dialogue:
        out.append((f"{key}.prompt", "an llm role needs a prompt or a dialogue"))
    for field in ("system", "prompt"):
        bad = _template_problem(getattr(role, field))
        if bad:
            out.append((f"{key}.{field}", bad))
    return out


def _routing_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    r = cfg.routing
    out = [(key, reason) for key, role in _routed_roles(cfg) if (reason := _no_role(cfg, role))]
    for src, dst in r.edges.items():
        for i, edge in enumerate(dst if isinstance(dst, list) else []):
            bad = _template_problem(edge.when, expression=True)
            if bad:
                out.append((f"routing.edges.{src}.{i}.when", bad))
    if r.kind == "sequential" and not r.order:
        out.append(("routing.order", "sequential routing needs an order"))
    if r.kind == "graph" and not r.start:
        out.append(("routing.start", "graph routing needs a start role"))
    if r.kind == "function" and not r.function:
        out.append(("routing.function", "function routing needs 'module:function'"))
    bad = _template_problem(r.stop_when, expression=True)
    if bad:
        out.append(("routing.stop_when", bad))
    return out


def _routed_roles(cfg: RunConfig) -> list[tuple[str, str]]:
    """(key, role) for every role routing names: the order, the start, edge ends."""
    r = cfg.routing
    named = [(f"routing.order.{i}", role) for i, role in enumerate(r.order)]
    named += [("routing.start", r.start)] if r.start else []
    for src, dst in r.edges.items():
        named.append((f"routing.edges.{src}", src))
        if isinstance(dst, str):
            named.append((f"routing.edges.{src}", dst))
        else:
            named += [(f"routing.edges.{src}.{i}.to", edge.to) for i, edge in enumerate(dst)]
    return named


def _no_role(cfg: RunConfig, role: str) -> str | None:
    if role in cfg.roles or role.upper() == "END":
        return None
    return f"no role named {role!r}{did_you_mean(role, cfg.roles)}"


def _group_problems(cfg: RunConfig) -> list[tuple[str, str]]:
    groups = cfg.workers.groups
    if not groups:
        return []
    out: list[tuple[str, str]] = []
    hosted: set[str] = set()
    for name, group in groups.items():
        out += [
            (f"workers.groups.{name}.roles", f"no role named {role!r}")
            for role in group.roles
            if role not in cfg.roles
        ]
        hosted.update(group.roles)
    missing = sorted(set(cfg.roles) - hosted)
    if missing:
        out.append(("workers.groups", f"roles hosted by no group: {', '.join(missing)}"))
    total = sum(g.count for g in groups.values())
    if total != cfg.workers.count:
        out.append(("workers.count", f"is {cfg.workers.count} but the groups add up to {total}"))
    return out


def _script_problems(cfg: RunConfig) -> Problems:
    """A simulated script names roles that ask this service: a typo or a python step would
    leave the dry run on filler text and the branch it was written for untested."""
    out: Problems = []
    for name, svc in cfg.services.items():
        for role in svc.simulated.script:
            key = f"services.{name}.simulated.script.{role}"
            found = cfg.roles.get(role)
            if found is None:
                out.append((key, unknown_name("role", role, cfg.roles)))
            elif found.kind == "python":
                out.append((key, f"role {role!r} is a python step: it makes no LLM calls"))
            elif found.kind == "llm" and found.service != name:
                out.append((key, f"role {role!r} calls service {found.service!r}, not {name!r}"))
    return out
