"""The routing as a graph: does every role run, can every task end.

Which roles exist and whether routing names them is the config's validation
(``config/checks.py``); here is what follows from the shape: a role no path reaches,
an edge that can never be taken, a loop with no way out. A condition may be true or
false, so every conditional edge is taken to be possible; a ``stop_when`` is taken to
end any path. Function routing is a black box: nothing is said about it.
"""

from __future__ import annotations

from matrixhpc.config import EdgeConfig, RunConfig

Problems = list[tuple[str, str]]
END = "END"


def graph_problems(cfg: RunConfig) -> Problems:
    routing = cfg.routing
    if routing.kind == "sequential":
        return _sequential_problems(cfg)
    if routing.kind == "graph" and routing.start:
        return _graph_problems(cfg, routing.start)
    return []


def _sequential_problems(cfg: RunConfig) -> Problems:
    routing = cfg.routing
    out: Problems = [
        (f"roles.{name}", "never runs: routing.order does not name it")
        for name in cfg.roles
        if name not in routing.order
    ]
    if routing.repeat and not routing.stop_when:
        out.append(
            (
                "routing.repeat",
                "the order repeats and no routing.stop_when ends it: every task runs "
                f"until routing.max_steps ({routing.max_steps})",
            )
        )
    return out


def _edges(raw: str | list[EdgeConfig]) -> list[EdgeConfig]:
    return [EdgeConfig(to=raw)] if isinstance(raw, str) else raw


def successors(cfg: RunConfig) -> tuple[dict[str, set[str]], Problems]:
    """Where each role may go next (END included), and the edges that are never taken:
    those after an edge without a condition, which always matches first."""
    out: dict[str, set[str]] = {name: {END} for name in cfg.roles}  # no edge: the task ends
    dead: Problems = []
    for src, raw in cfg.routing.edges.items():
        if src not in out:
            continue  # an unknown role: the config's validation reports it
        nexts: set[str] = set()
        edges = _edges(raw)
        for i, edge in enumerate(edges):
            nexts.add(END if edge.to.upper() == END else edge.to)
            if edge.when is None:
                dead += [
                    (
                        f"routing.edges.{src}.{j}",
                        f"never taken: edge {i} has no condition and always matches first",
                    )
                    for j in range(i + 1, len(edges))
                ]
                break
        else:
            nexts.add(END)  # no condition matched: the task ends
        out[src] = nexts
    return out, dead


def _graph_problems(cfg: RunConfig, start: str) -> Problems:
    nexts, out = successors(cfg)
    reached = _reachable(nexts, start)
    out += [
        (f"roles.{name}", f"never runs: no edge from routing.start {start!r} leads to it")
        for name in cfg.roles
        if name not in reached
    ]
    if cfg.routing.stop_when:
        return out
    ends = _can_end(nexts)
    trapped = [name for name in cfg.roles if name in reached and name not in ends]
    if trapped:
        out.append(
            (
                f"routing.edges.{trapped[0]}",
                f"no path from {', '.join(trapped)} ever reaches END: their edges lead only "
                "among them; add an edge to END (with a when:) or a routing.stop_when, else "
                f"every task runs until routing.max_steps ({cfg.routing.max_steps})",
            )
        )
    return out


def _reachable(nexts: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        role = todo.pop()
        if role in seen or role not in nexts:
            continue
        seen.add(role)
        todo += nexts[role]
    return seen


def _can_end(nexts: dict[str, set[str]]) -> set[str]:
    """Roles from which some path reaches END (a fixpoint over the edges)."""
    ends: set[str] = set()
    changed = True
    while changed:
        changed = False
        for role, targets in nexts.items():
            if role not in ends and (END in targets or targets & ends):
                ends.add(role)
                changed = True
    return ends
