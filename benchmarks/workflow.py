"""The generated run config: the Coral shape with the benchmark's roles.

Two speaking roles alternate (``student`` opens with a prompt, ``teacher`` answers), and a
cheap python judge after every spoken turn counts turns; the dialogue stops when
``state.turns >= row.turns``. Every design builds its agents, router and client policies
from this one file (``matrixhpc.build``), so they run the same code per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.dialogue import OPENING, SPEAKERS
from benchmarks.engines import SERVICE, EngineSetup
from matrixhpc.config import RunConfig, load_config

AGENT = "benchmarks.dialogue:DialogueTurn"
JUDGE = "benchmarks.dialogue:count_turns"
REPO = Path(__file__).resolve().parents[1]  # where `benchmarks.*` is imported from


@dataclass(frozen=True, slots=True)
class Placement:
    """How many tasks are offered at once and over how many worker processes."""

    inflight: int
    workers: int

    @property
    def window(self) -> int:
        """Per-origin admission window of the runtime (total in flight / workers)."""
        return max(1, -(-self.inflight // self.workers))


def config_dict(
    dataset: Path,
    setup: EngineSetup,
    placement: Placement,
    max_turns: int,
    durability: str | None = None,
) -> dict[str, Any]:
    speaker_options = {"service": SERVICE, "dialogue": list(SPEAKERS), "sticky": setup.sticky}
    student, teacher = SPEAKERS
    workers: dict[str, Any] = {
        "count": placement.workers,
        "window": placement.window,
        # every admitted task may step; LLM concurrency is bounded by the client
        "max_active": max(4096, placement.window),
    }
    if durability is not None:
        workers["durability"] = durability
    return {
        "name": "dialogue-bench",
        "seed": 0,
        "services": {SERVICE: setup.service_config()},
        "roles": {
            student: {
                "kind": "custom",
                "class": AGENT,
                "options": {**speaker_options, "prompt": OPENING},
            },
            teacher: {
                "kind": "custom",
                "class": AGENT,
                "options": {**speaker_options, "prompt": ""},
            },
            "judge": {
                "kind": "python",
                "function": JUDGE,
                "options": {"roles": list(SPEAKERS)},
                "sets": ["turns"],
            },
        },
        "routing": {
            "kind": "sequential",
            "order": [student, "judge", teacher, "judge"],
            "repeat": True,
            "stop_when": "state.turns >= row.turns",
            "max_steps": 2 * max_turns + 2,
        },
        "dataset": {"path": str(dataset), "required": ["question", "turns", "tokens"]},
        "workers": workers,
        "state": {"turns": 0},  # stop_when is evaluated from the first turn on
        "python_path": [str(REPO)],
    }


def write_config(
    path: Path,
    dataset: Path,
    setup: EngineSetup,
    placement: Placement,
    max_turns: int,
    durability: str | None = None,
) -> RunConfig:
    """Write the YAML and return it validated (a config error fails here, not mid-run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = config_dict(dataset.resolve(), setup, placement, max_turns, durability)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)
