"""Every Jinja source a config holds, with its key: the templates and the conditions.

One list that the other checks walk, so that a new template key is checked by all of
them once it is listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from matrixhpc.config import RunConfig


@dataclass(frozen=True)
class Source:
    key: str  # roles.writer.prompt, routing.edges.critic.0.when
    text: str
    kind: Literal["template", "condition"]
    role: str | None = None  # the role whose template it is


def jinja_sources(cfg: RunConfig) -> list[Source]:
    out: list[Source] = []
    for name, role in cfg.roles.items():
        if role.kind != "llm":
            continue
        for field in ("system", "prompt"):
            text = getattr(role, field)
            if text is not None:
                out.append(Source(f"roles.{name}.{field}", text, "template", name))
    routing = cfg.routing
    if routing.stop_when:
        out.append(Source("routing.stop_when", routing.stop_when, "condition"))
    for src, dst in routing.edges.items():
        for i, edge in enumerate(dst if isinstance(dst, list) else []):
            if edge.when:
                out.append(Source(f"routing.edges.{src}.{i}.when", edge.when, "condition"))
    return out
