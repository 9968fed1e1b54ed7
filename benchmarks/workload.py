"""The benchmark workload: multi-turn dialogues shaped like the collaborative-reasoning one.

Every design reads the same seeded JSONL file, one dialogue per line::

    {"id": "d000042", "question": "...", "turns": 3, "tokens": [211, 96, 380]}

* ``turns`` is heavy-tailed: ``P(turns >= k) = (2 / k) ** alpha`` for ``2 <= k <= max_turns``
  and the rest of the mass sits at ``max_turns`` (dialogues that never agree run to the
  limit). With the defaults (alpha 1.5, limit 16): 46 % end after 2 turns, 75 % within
  4, 4.4 % run to 16; the mean is 4.2 turns.
* ``tokens[i]`` is the output length of turn ``i``: log-normal with the simulated profile's
  own mean and sigma (256, 0.6), clipped to ``[min_tokens, max_tokens]``. The agent asks
  the engine for exactly that many tokens (``max_tokens`` + ``ignore_eos``).
* ``question`` is filler text of log-normal length (the row's part of the prompt); every
  later turn's prompt also carries the whole dialogue so far, so prompts grow with history.

Pure data: no I/O beyond writing and reading the file, no matrixhpc imports.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_TEXT = (
    "graph node edge weight path cycle prime factor ratio angle triangle circle radius area "
    "volume vector matrix rank kernel basis limit series integral derivative slope mean "
    "median variance sample event outcome probability estimate bound proof lemma claim case"
)
_WORDS = _TEXT.split()


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Everything that decides the dataset; the same spec and seed give the same bytes."""

    tasks: int = 2000
    seed: int = 0
    alpha: float = 1.5  # tail index of the turn count
    min_turns: int = 2
    max_turns: int = 16
    mean_tokens: float = 256.0  # mean output tokens per turn (log-normal)
    sigma_tokens: float = 0.6  # sigma of log(tokens)
    min_tokens: int = 16
    max_tokens: int = 2048
    mean_question_tokens: float = 150.0  # the row's share of the prompt
    sigma_question: float = 0.5

    def __post_init__(self) -> None:
        if self.tasks < 1 or not 1 <= self.min_turns <= self.max_turns:
            raise ValueError("need tasks >= 1 and 1 <= min_turns <= max_turns")
        if self.alpha <= 0 or self.sigma_tokens < 0 or self.mean_tokens < 1:
            raise ValueError("need alpha > 0, sigma_tokens >= 0, mean_tokens >= 1")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError("need 1 <= min_tokens <= max_tokens")


def sample_turns(rng: random.Random, spec: WorkloadSpec) -> int:
    """Inverse-CDF draw of ``P(T >= k) = (min_turns / k) ** alpha``, capped at the limit."""
    u = 1.0 - rng.random()  # (0, 1]: never divides by zero
    turns = math.floor(spec.min_turns / float(u ** (1.0 / spec.alpha)))
    return min(max(turns, spec.min_turns), spec.max_turns)


def sample_tokens(rng: random.Random, spec: WorkloadSpec) -> int:
    """A log-normal output length with mean ``mean_tokens`` before clipping."""
    sigma = spec.sigma_tokens
    mu = math.log(spec.mean_tokens) - sigma * sigma / 2
    n = round(rng.lognormvariate(mu, sigma))
    return min(max(n, spec.min_tokens), spec.max_tokens)


def _question(rng: random.Random, spec: WorkloadSpec) -> str:
    sigma = spec.sigma_question
    mu = math.log(spec.mean_question_tokens) - sigma * sigma / 2
    tokens = max(8, round(rng.lognormvariate(mu, sigma)))
    # ~4 characters per prompt token is what the simulated engine counts
    words = rng.choices(_WORDS, k=max(1, tokens * 4 // 7))
    return " ".join(words).capitalize() + "?"


def generate(spec: WorkloadSpec) -> Iterator[dict[str, Any]]:
    """The dataset's rows, in order; deterministic in ``spec``."""
    rng = random.Random(spec.seed)
    for i in range(spec.tasks):
        turns = sample_turns(rng, spec)
        yield {
            "id": f"d{i:06d}",
            "question": _question(rng, spec),
            "turns": turns,
            "tokens": [sample_tokens(rng, spec) for _ in range(turns)],
        }


def write_dataset(spec: WorkloadSpec, path: Path) -> Path:
    """Write the JSONL file (and ``<path>.spec.json`` next to it); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in generate(spec):
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
    path.with_name(path.name + ".spec.json").write_text(json.dumps(asdict(spec), indent=2))
    return path


def read_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def summarize(rows: list[dict[str, Any]], max_turns: int | None = None) -> dict[str, float]:
    """Shape of a dataset: turn distribution and token totals (for reports and tests)."""
    turns = sorted(r["turns"] for r in rows)
    tokens = [t for r in rows for t in r["tokens"]]
    limit = max_turns or max(turns)
    return {
        "tasks": len(rows),
        "turns_mean": sum(turns) / len(turns),
        "turns_p50": turns[len(turns) // 2],
        "share_2_to_4_turns": sum(1 for t in turns if 2 <= t <= 4) / len(turns),
        "share_at_limit": sum(1 for t in turns if t == limit) / len(turns),
        "max_turns": limit,
        "llm_calls": len(tokens),
        "output_tokens": sum(tokens),
        "tokens_mean": sum(tokens) / len(tokens),
    }
