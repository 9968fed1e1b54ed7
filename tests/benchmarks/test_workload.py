"""The benchmark's workload generator and its roles: seeded, shaped as documented."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from benchmarks.dialogue import DialogueTurn, count_turns
from benchmarks.engines import EngineSetup
from benchmarks.workflow import Placement, write_config
from benchmarks.workload import (
    WorkloadSpec,
    generate,
    read_rows,
    summarize,
    write_dataset,
)
from matrixhpc.agents.base import AgentContext
from matrixhpc.build import build_agents, build_router
from matrixhpc.llm.types import ChatResult
from matrixhpc.task import END, Task


def test_same_seed_same_rows_other_seed_other_rows() -> None:
    spec = WorkloadSpec(tasks=300, seed=7)
    assert list(generate(spec)) == list(generate(spec))
    other = list(generate(WorkloadSpec(tasks=300, seed=8)))
    assert other != list(generate(spec))


def test_rows_are_well_formed() -> None:
    spec = WorkloadSpec(tasks=2000)
    for row in generate(spec):
        assert spec.min_turns <= row["turns"] <= spec.max_turns
        assert len(row["tokens"]) == row["turns"]
        assert all(spec.min_tokens <= n <= spec.max_tokens for n in row["tokens"])
        assert row["question"]


def test_turns_are_heavy_tailed_and_tokens_log_normal() -> None:
    spec = WorkloadSpec(tasks=20_000)
    shape = summarize(list(generate(spec)), spec.max_turns)
    assert shape["share_2_to_4_turns"] > 0.70  # most dialogues end in 2-4 turns
    assert 0.03 < shape["share_at_limit"] < 0.07  # a few run to the limit
    assert 3.8 < shape["turns_mean"] < 4.6
    assert abs(shape["tokens_mean"] - spec.mean_tokens) / spec.mean_tokens < 0.03
    tokens = sorted(t for row in generate(spec) for t in row["tokens"])
    median = tokens[len(tokens) // 2]
    assert median < spec.mean_tokens  # right-skewed, as a log-normal is


def test_dataset_file_round_trips(tmp_path: Path) -> None:
    spec = WorkloadSpec(tasks=50)
    path = write_dataset(spec, tmp_path / "d.jsonl")
    assert read_rows(path) == list(generate(spec))
    assert (tmp_path / "d.jsonl.spec.json").exists()


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def chat(
        self,
        service: str,
        messages: list[dict[str, Any]],
        params: dict[str, Any],
        *,
        sticky_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> ChatResult:
        call = {"messages": messages, "params": params, "sticky": sticky_key, "meta": metadata}
        self.calls.append(call)
        usage = {"prompt_tokens": 10, "completion_tokens": params["max_tokens"]}
        return ChatResult(f"reply {len(self.calls)}", usage, "length", "r0", 0.0)


def test_speaker_asks_for_the_rows_length_and_prompts_grow(tmp_path: Path) -> None:
    dataset = write_dataset(WorkloadSpec(tasks=5), tmp_path / "d.jsonl")
    cfg = write_config(tmp_path / "c.yaml", dataset, EngineSetup(), Placement(8, 2), 16)
    agents = build_agents(cfg, list(cfg.roles))
    router = build_router(cfg.routing)
    assert isinstance(agents["student"], DialogueTurn)
    row = {"question": "Why?", "turns": 3, "tokens": [11, 22, 33]}
    task = Task(id="r0-t0", seed=1, row=row, origin="w0")
    task.start_from(cfg.state)  # as admission does: stop_when reads state.turns at once
    client = _Recorder()
    ctx = AgentContext(llm=client, worker="w0")
    task.next = router.first(task)
    while not task.finished:
        turn = asyncio.run(agents[task.next](task, ctx))
        if turn is not None:
            task.history.append(turn)
        task.hop += 1
        task.next = router.after(task)
    assert task.next == END
    assert task.state["turns"] == 3
    assert [c["params"]["max_tokens"] for c in client.calls] == [11, 22, 33]
    assert all(c["params"]["ignore_eos"] for c in client.calls)
    assert all(c["sticky"] == "r0-t0" for c in client.calls)
    assert [(c["meta"]["role"], c["meta"]["task"]) for c in client.calls] == [
        ("student", "r0-t0"),
        ("teacher", "r0-t0"),
        ("student", "r0-t0"),
    ]  # the benchmark's speakers tell the engine who asks, as LLMAgent does
    sizes = [sum(len(m["content"]) for m in c["messages"]) for c in client.calls]
    assert sizes[2] > sizes[0]
    assert sizes[-1] == max(sizes)


def test_the_generated_config_passes_matrixhpc_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matrixhpc.check import check_config

    monkeypatch.setattr(sys, "path", list(sys.path))  # the check puts python_path first
    dataset = write_dataset(WorkloadSpec(tasks=5), tmp_path / "d.jsonl")
    cfg = write_config(tmp_path / "c.yaml", dataset, EngineSetup(), Placement(8, 2), 16)
    assert check_config(cfg).problems == []


def test_judge_counts_only_speaking_turns() -> None:
    task = Task(id="t", seed=0, row={}, origin="w")
    task.history = [{"role": "student"}, {"role": "judge"}, {"role": "teacher"}]
    assert count_turns(task, {"roles": ["student", "teacher"]}) == {"turns": 2}


@pytest.mark.parametrize(
    ("inflight", "workers", "window"), [(100, 2, 50), (101, 2, 51), (5, 16, 1)]
)
def test_placement_window(inflight: int, workers: int, window: int) -> None:
    assert Placement(inflight, workers).window == window
