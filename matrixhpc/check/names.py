"""Names a template or condition uses that can never exist, found in its syntax tree.

Two kinds, both knowable from the config alone, whatever the data and whichever branch
a template takes: a top-level name nothing provides (``rwo.topic``), and a state key
that nothing ever sets (``state.vaild``). A state key exists if the top-level
``state:`` gives it an initial value, if a role lists it in its ``sets:``, or if
matrixhpc sets it (``trial``).
"""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
from jinja2 import meta, nodes
from jinja2.parser import Parser

from matrixhpc.agents.templates import template_environment
from matrixhpc.check.sources import Source
from matrixhpc.config import RunConfig
from matrixhpc.config.bounds import did_you_mean
from matrixhpc.routing import CONDITION_NAMES, condition_environment

Problems = list[tuple[str, str]]

#: state keys matrixhpc sets on every task
BUILTIN_STATE = ("trial",)

_ENVIRONMENTS = {"template": template_environment(), "condition": condition_environment()}
_JINJA_GLOBALS = tuple(jinja2.Environment().globals)


def known_state_keys(cfg: RunConfig) -> set[str]:
    keys = set(BUILTIN_STATE) | set(cfg.state)
    for name, role in cfg.roles.items():
        keys.update(role.sets)
        if role.kind == "sandbox":  # its result, {ok, exit_code, limit}, for conditions
            keys.add(name)
    return keys


def syntax_tree(source: Source) -> nodes.Template:
    """The parsed source (it compiles: the config's validation saw to that)."""
    env = _ENVIRONMENTS[source.kind]
    if source.kind == "template":
        return env.parse(source.text)
    expr = Parser(env, source.text, state="variable").parse_expression()
    tree = nodes.Template([nodes.Output([expr])], lineno=1)
    tree.set_environment(env)
    return tree


def visible_names(kind: str) -> list[str]:
    """What a template or condition sees: our names, then jinja's own globals."""
    ours = [*CONDITION_NAMES, *sorted(set(_ENVIRONMENTS[kind].globals) - set(_JINJA_GLOBALS))]
    return ours + sorted(_JINJA_GLOBALS)


def name_problems(cfg: RunConfig, sources: list[Source]) -> Problems:
    known_state = known_state_keys(cfg)
    out: Problems = []
    for source in sources:
        tree = syntax_tree(source)
        visible = visible_names(source.kind)
        ours = [n for n in visible if n not in _JINJA_GLOBALS]
        for name in sorted(meta.find_undeclared_variables(tree) - set(visible)):
            reason = f"{name!r} is undefined: a {source.kind} sees {', '.join(ours)}"
            out.append((source.key, reason + did_you_mean(name, visible)))
        for key in dict.fromkeys(state_reads(tree)):
            if key not in known_state:
                out.append((source.key, _never_set(key, known_state)))
    return out


def _never_set(key: str, known: set[str]) -> str:
    return (
        f"'state.{key}' is never set: it is not in the top-level state: and no role lists it"
        f" in its sets:{did_you_mean(key, sorted(known))}"
    )


def state_reads(tree: nodes.Node) -> Iterator[str]:
    """Every constant key read from the state: ``state.k``, ``state['k']``,
    ``state.get('k')``, and the same through ``task.state``."""
    called = {id(call.node): call for call in tree.find_all(nodes.Call)}
    for item in tree.find_all(nodes.Getitem):
        key = item.arg.value if isinstance(item.arg, nodes.Const) else None
        if _is_state(item.node) and isinstance(key, str):
            yield key
    for attr in tree.find_all(nodes.Getattr):
        if not _is_state(attr.node):
            continue
        call = called.get(id(attr))
        if call is None:
            yield attr.attr
        elif attr.attr == "get" and call.args and isinstance(call.args[0], nodes.Const):
            yield str(call.args[0].value)


def _is_state(node: nodes.Node) -> bool:
    if isinstance(node, nodes.Name):
        return node.name == "state"
    return (
        isinstance(node, nodes.Getattr)
        and node.attr == "state"
        and isinstance(node.node, nodes.Name)
        and node.node.name == "task"
    )
