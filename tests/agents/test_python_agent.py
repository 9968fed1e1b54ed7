"""PythonAgent: sync/async functions, options, state merge, return type."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from matrixhpc.agents.base import AgentContext
from matrixhpc.agents.python import PythonAgent
from matrixhpc.llm.types import ChatResult
from matrixhpc.task import Task


class _NoLLM:
    async def chat(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise AssertionError("a python step must not call the LLM")


CTX = AgentContext(llm=_NoLLM(), worker="w0")


def _task(**state: Any) -> Task:
    return Task(id="t", seed=1, row={"x": 2}, origin="w0", state=dict(state))


def _run(agent: PythonAgent, task: Task) -> Any:
    return asyncio.run(agent(task, CTX))


def test_sync_function_without_options() -> None:
    def step(task: Task) -> dict[str, Any]:
        return {"double": task.row["x"] * 2}

    agent = PythonAgent("calc", step, {"ignored": True})
    assert not agent.takes_options
    task = _task(keep="me")
    turn = _run(agent, task)
    assert task.state == {"keep": "me", "double": 4}
    assert turn["role"] == "calc"
    assert turn["content"] == ""
    assert turn["data"] == {"double": 4}
    assert turn["timings"]["start"] <= turn["timings"]["end"]


def test_sync_function_with_options() -> None:
    seen: list[dict[str, Any]] = []

    def step(task: Task, options: dict[str, Any]) -> dict[str, Any]:
        seen.append(options)
        return {"scaled": task.row["x"] * options["factor"]}

    agent = PythonAgent("calc", step, {"factor": 10})
    assert agent.takes_options
    task = _task()
    _run(agent, task)
    assert seen == [{"factor": 10}]
    assert task.state["scaled"] == 20


def test_options_default_to_empty_dict() -> None:
    def step(task: Task, options: dict[str, Any]) -> dict[str, Any]:
        return {"opts": dict(options)}

    task = _task()
    _run(PythonAgent("p", step), task)
    assert task.state["opts"] == {}


def test_async_function_with_and_without_options() -> None:
    async def plain(task: Task) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"a": 1}

    async def with_opts(task: Task, options: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"b": options["v"]}

    agent = PythonAgent("p", plain)
    task = _task()
    assert _run(agent, task)["data"] == {"a": 1}
    assert _run(PythonAgent("q", with_opts, {"v": "x"}), task)["data"] == {"b": "x"}
    assert task.state == {"a": 1, "b": "x"}


def test_state_merge_overwrites_keys_and_keeps_others() -> None:
    def step(task: Task) -> dict[str, Any]:
        return {"turns": task.state["turns"] + 1, "new": [1]}

    task = _task(turns=2, answers={"a": "B"})
    _run(PythonAgent("p", step), task)
    assert task.state == {"turns": 3, "answers": {"a": "B"}, "new": [1]}


def test_none_return_records_no_turn_and_keeps_state() -> None:
    task = _task(k=1)
    assert _run(PythonAgent("p", lambda task: None), task) is None
    assert task.state == {"k": 1}


@pytest.mark.parametrize("bad", [[("a", 1)], "text", 3, ("a",)])
def test_non_dict_return_raises_type_error(bad: Any) -> None:
    task = _task(k=1)
    with pytest.raises(TypeError, match="p: a python step returns a dict or None"):
        _run(PythonAgent("p", lambda task: bad), task)
    assert task.state == {"k": 1}


def test_async_non_dict_return_raises_type_error() -> None:
    async def step(task: Task) -> list[int]:
        return [1]

    with pytest.raises(TypeError):
        _run(PythonAgent("p", step), _task())


def test_turn_override() -> None:
    def step(task: Task) -> dict[str, Any]:
        return {"score": 5, "_turn": {"content": "scored 5", "error": None}}

    task = _task()
    turn = _run(PythonAgent("judge", step), task)
    assert turn["content"] == "scored 5"
    assert turn["error"] is None
    assert turn["role"] == "judge"
    assert task.state == {"score": 5}  # the override is not state
    assert turn["data"] == {"score": 5}


def test_exceptions_propagate() -> None:
    def step(task: Task) -> dict[str, Any]:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        _run(PythonAgent("p", step), _task())


def test_works_with_the_coral_steps_by_signature() -> None:
    from matrixhpc.workflows.coral import extract_answer

    agent = PythonAgent("extractor", extract_answer, {"roles": ["teacher", "student"]})
    task = _task()
    task.row = {"options": ["1", "2", "3", "4"]}
    task.history.append({"role": "student", "content": "The correct answer is (B)."})
    turn = _run(agent, task)
    assert task.state["answers"] == {"student": "B"}
    assert turn["data"]["extracted"] == "B"


def test_keyword_only_parameters_are_not_the_options_slot() -> None:
    def step(task: Task, *, flag: bool = False) -> dict[str, Any]:
        return {"flag": flag}

    task = _task()
    _run(PythonAgent("p", step), task)
    assert task.state == {"flag": False}


def test_decorated_async_function_is_awaited() -> None:
    made: list[Coroutine[Any, Any, dict[str, Any]]] = []

    def logged(
        fn: Callable[[Task], Coroutine[Any, Any, dict[str, Any]]],
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(task: Task) -> Coroutine[Any, Any, dict[str, Any]]:
            made.append(fn(task))
            return made[-1]

        return wrapper

    @logged
    async def step(task: Task) -> dict[str, Any]:
        return {"done": True}

    task = _task()
    try:
        _run(PythonAgent("p", step), task)
    finally:
        for coro in made:
            coro.close()  # no "never awaited" warning when the bug is present
    assert task.state == {"done": True}
