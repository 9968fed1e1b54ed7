"""The two scenario configs describe the same workload, and the driver's overrides fit them.

Matrix's side is read as plain YAML (OmegaConf is only in the Matrix venv); its
``${persona}`` interpolation is resolved by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from benchmarks.matrix.runs import (
    MATRIX_CONFIG,
    MATRIXHPC_CONFIG,
    Workload,
    matrix_overrides,
    matrixhpc_overrides,
)
from matrixhpc.config import load_config

URL = "http://127.0.0.1:9/v1"


def matrix_config() -> dict[str, Any]:
    data = yaml.safe_load(MATRIX_CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        assert isinstance(node, dict), f"{dotted}: {part!r} is under a value"
        assert part in node, f"{dotted}: no key {part!r}"
        node = node[part]
    return node


def test_matrixhpc_config_loads_with_the_drivers_overrides(tmp_path: Path) -> None:
    w = Workload(tasks=10, inflight=20, turns=4, max_tokens=32, workers=2)
    rows = tmp_path / "rows.jsonl"
    cfg = load_config(MATRIXHPC_CONFIG, matrixhpc_overrides(w, URL, rows))
    assert cfg.services["llm"].engine == "external"
    assert cfg.services["llm"].url == URL
    assert cfg.dataset.path == str(rows)
    assert cfg.routing.stop_when == "state.turns >= 4"
    assert cfg.workers.count * cfg.workers.window == 20
    for role in ("teacher", "student"):
        assert cfg.roles[role].params["max_tokens"] == 32
        assert cfg.roles[role].params["ignore_eos"] is True


def test_every_matrix_override_names_an_existing_key(tmp_path: Path) -> None:
    """OmegaConf's merge would silently add a misspelled key; this catches it."""
    data = matrix_config()
    for item in matrix_overrides(Workload(), URL, tmp_path / "r", tmp_path / "o"):
        lookup(data, item.partition("=")[0])


def test_both_sides_run_the_same_workload() -> None:
    mine = load_config(MATRIXHPC_CONFIG)
    theirs = matrix_config()
    persona = theirs["persona"]
    for role in ("teacher", "student"):
        assert mine.roles[role].system == persona
        assert theirs["agents"][role]["system_prompt"] == "${persona}"
        params = dict(mine.roles[role].params)
        sampling = dict(theirs["resources"]["llm"]["sampling_params"])
        assert sampling.pop("extra_body") == {"ignore_eos": params.pop("ignore_eos")}
        assert params == sampling
    turns = int(mine.routing.stop_when.rsplit(">=", 1)[1])
    assert turns == theirs["orchestrator"]["max_turns"]
    assert mine.workers.count * mine.workers.window == theirs["max_concurrent_tasks"]
    # the same order of steps, the speaker first; python steps after every turn
    order = [r.removeprefix("answer_") for r in theirs["orchestrator"]["interaction_order"]]
    assert order == mine.routing.order
    # the extractor is a python step on both sides: ours, not Matrix's LLM extraction agent
    assert mine.roles["extractor"].kind == "python"
    extractor = theirs["agents"]["answer_extractor"]["_target_"]
    assert extractor == "benchmarks.matrix.scenario.AnswerExtractor"


def test_default_workload_sizes_match_the_configs() -> None:
    w, theirs, mine = Workload(), matrix_config(), load_config(MATRIXHPC_CONFIG)
    assert w.inflight == theirs["max_concurrent_tasks"]
    assert w.turns == theirs["orchestrator"]["max_turns"]
    assert w.max_tokens == mine.roles["teacher"].params["max_tokens"]
    assert w.tokens == w.tasks * w.turns * w.max_tokens
