"""LLMAgent: message building from templates and dialogue seats, and real calls to the
simulated engine served in-process over loopback with the real LLMClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import jinja2
import pytest

from matrixhpc.agents.base import AgentContext
from matrixhpc.agents.llm import LLMAgent
from matrixhpc.llm.client import LLMClient
from matrixhpc.llm.engines.simulated import PROFILES, Script, create_app, start_server
from matrixhpc.llm.replicas import StaticReplicaSource
from matrixhpc.llm.types import ClientPolicy, ReplicaInfo, ServiceUnavailable
from matrixhpc.task import Task, Turn


def _agent(name: str = "student", **kw: Any) -> LLMAgent:
    args: dict[str, Any] = {
        "service": "llm",
        "system": None,
        "prompt": None,
        "dialogue": [],
        "params": {},
    }
    args.update(kw)
    return LLMAgent(name, **args)


def _task(history: list[Turn] | None = None, **row: Any) -> Task:
    return Task(id="task-1", seed=11, row=row, origin="w0", history=list(history or []))


# ------------------------------------------------------------------ messages


def test_system_and_opening_prompt_render_the_row() -> None:
    agent = _agent(
        system="Question: {{ row.question }}\n"
        "{% for o in row.options %}({{ letters[loop.index0] }}) {{ o }}\n{% endfor %}",
        prompt="What is {{ row.question | lower }}?",
    )
    task = _task(question="2+2", options=["3", "4"])
    assert agent.messages(task) == [
        {"role": "system", "content": "Question: 2+2\n(A) 3\n(B) 4\n"},
        {"role": "user", "content": "What is 2+2?"},
    ]


def test_dialogue_seats_own_turns_assistant_others_user() -> None:
    history: list[Turn] = [
        {"role": "student", "content": "s1"},
        {"role": "extractor", "content": "", "data": {"x": 1}},
        {"role": "teacher", "content": "t1"},
        {"role": "judge", "content": "not in the dialogue"},
        {"role": "student", "content": "s2"},
        {"role": "teacher", "content": "t2"},
    ]
    system = "sys"
    student = _agent("student", system=system, prompt="Begin.", dialogue=["student", "teacher"])
    teacher = _agent("teacher", system=system, dialogue=["student", "teacher"])
    task = _task(history)
    assert student.messages(task) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "Begin."},
        {"role": "assistant", "content": "s1"},
        {"role": "user", "content": "t1"},
        {"role": "assistant", "content": "s2"},
        {"role": "user", "content": "t2"},
    ]
    assert teacher.messages(task) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "s1"},
        {"role": "assistant", "content": "t1"},
        {"role": "user", "content": "s2"},
        {"role": "assistant", "content": "t2"},
    ]


def test_consecutive_same_seat_messages_are_merged() -> None:
    history: list[Turn] = [
        {"role": "teacher", "content": "t1"},
        {"role": "critic", "content": "c1"},
        {"role": "student", "content": "s1"},
        {"role": "student", "content": "s2"},
        {"role": "teacher", "content": "t2"},
    ]
    agent = _agent("student", prompt="Open.", dialogue=["student", "teacher", "critic"])
    assert agent.messages(_task(history)) == [
        {"role": "user", "content": "Open.\n\nt1\n\nc1"},  # prompt + two partners' turns
        {"role": "assistant", "content": "s1\n\ns2"},
        {"role": "user", "content": "t2"},
    ]


def test_failed_or_empty_turns_are_left_out() -> None:
    history: list[Turn] = [
        {"role": "teacher", "content": "", "error": "timeout"},
        {"role": "teacher", "content": "t1"},
    ]
    agent = _agent("student", dialogue=["student", "teacher"])
    assert agent.messages(_task(history)) == [{"role": "user", "content": "t1"}]


def test_blank_opening_prompt_is_dropped() -> None:
    agent = _agent(prompt="{% if row.hint %}{{ row.hint }}{% endif %}  ", system="s")
    assert agent.messages(_task(hint="")) == [{"role": "system", "content": "s"}]
    assert agent.messages(_task(hint="go"))[-1] == {"role": "user", "content": "go  "}


def test_prompt_sees_last_state_and_task() -> None:
    agent = _agent(
        "editor",
        prompt="{{ last('writer').content }}|{{ last().role }}|{{ state.n }}|{{ task.id }}",
    )
    task = _task([{"role": "writer", "content": "draft"}, {"role": "x", "content": "y"}])
    task.state["n"] = 3
    assert agent.messages(task) == [{"role": "user", "content": "draft|x|3|task-1"}]


def test_missing_row_field_raises_with_strict_undefined() -> None:
    agent = _agent(prompt="Explain {{ row.topic }}.")
    with pytest.raises(jinja2.UndefinedError, match="topic"):
        agent.messages(_task(other="x"))
    system_agent = _agent(system="{{ row.question }}", prompt="ok")
    with pytest.raises(jinja2.UndefinedError):
        system_agent.messages(_task())


def test_missing_field_inside_a_loop_raises() -> None:
    agent = _agent(prompt="{% for o in row.options %}{{ o }}{% endfor %}")
    with pytest.raises(jinja2.UndefinedError):
        agent.messages(_task())


def test_no_templates_no_dialogue_is_empty() -> None:
    assert _agent().messages(_task([{"role": "student", "content": "x"}])) == []


# ------------------------------------------------------------------ __call__, real engine


@asynccontextmanager
async def _engine(
    names: tuple[str, ...] = ("sim-0",), script: Script | None = None, **policy: Any
) -> AsyncIterator[LLMClient]:
    runners = []
    infos = []
    for name in names:
        app = create_app(PROFILES["zero"], model=f"model-{name}", seed=0, script=script)
        runner, port = await start_server(app)
        runners.append(runner)
        url = f"http://127.0.0.1:{port}/v1"
        infos.append(ReplicaInfo(name, url, f"m-{name}", request_metadata=True))
    client = LLMClient(StaticReplicaSource({"llm": infos}), {"llm": ClientPolicy(**policy)})
    try:
        yield client
    finally:
        await client.close()
        for runner in runners:
            await runner.cleanup()


@pytest.mark.asyncio
async def test_call_against_the_simulated_engine() -> None:
    agent = _agent(
        system="You help with {{ row.topic }}.",
        prompt="Explain {{ row.topic }}.",
        params={"max_tokens": 7, "ignore_eos": True},
    )
    task = _task(topic="rainbows")
    chars = sum(len(m["content"]) for m in agent.messages(task))
    async with _engine() as client:
        turn = await agent(task, AgentContext(llm=client, worker="w0"))
    assert turn is not None
    assert turn["role"] == "student"
    assert isinstance(turn["content"], str)
    assert turn["content"].strip()
    assert "error" not in turn
    assert turn["usage"] == {"prompt_tokens": max(1, chars // 4), "completion_tokens": 7}
    assert turn["finish_reason"] == "length"
    assert turn["replica"] == "sim-0"
    timings = turn["timings"]
    assert timings["start"] <= timings["end"]
    assert 0 <= timings["latency"] <= timings["end"] - timings["start"] + 0.01
    assert "data" not in turn  # no tool calls, no retries


@pytest.mark.asyncio
async def test_call_is_deterministic_for_a_task_and_varies_with_its_seed() -> None:
    agent = _agent(prompt="Say something about {{ row.topic }}.", params={"max_tokens": 64})
    async with _engine() as client:
        ctx = AgentContext(llm=client, worker="w0")
        a = await agent(_task(topic="owls"), ctx)
        b = await agent(_task(topic="owls"), ctx)
        other = _task(topic="owls")
        other.seed = 12345
        c = await agent(other, ctx)
    assert a is not None
    assert b is not None
    assert c is not None
    assert a["content"] == b["content"]
    assert a["usage"] == b["usage"]
    assert a["finish_reason"] in ("stop", "length")
    assert 1 <= a["usage"]["completion_tokens"] <= 64
    assert (c["content"], c["usage"]) != (a["content"], a["usage"])


@pytest.mark.asyncio
async def test_the_engine_learns_the_role_and_task_and_answers_from_its_script() -> None:
    script = Script.from_spec({"checker": {"template": "{{ role }}: {{ task_id }} @{{ turn }}"}})
    checker = _agent("checker", prompt="Check {{ row.topic }}.", params={"max_tokens": 64})
    writer = _agent("writer", prompt="Write about {{ row.topic }}.", params={"max_tokens": 64})
    task = _task([{"role": "writer", "content": "a draft"}], topic="owls")
    async with _engine(script=script) as client:
        ctx = AgentContext(llm=client, worker="w0")
        checked, written = await checker(task, ctx), await writer(task, ctx)
    assert checked is not None
    assert written is not None
    assert checked["content"] == "checker: task-1 @1"
    assert checked["usage"]["completion_tokens"] == 5  # 18 characters at 4 a token, rounded up
    assert "task-1" not in written["content"]  # no script for the writer: filler


@pytest.mark.asyncio
async def test_sticky_agent_keeps_a_dialogue_on_one_replica() -> None:
    agent = _agent(prompt="hi {{ row.n }}", params={"max_tokens": 4}, sticky=True)
    async with _engine(("r0", "r1", "r2"), sticky=True) as client:
        ctx = AgentContext(llm=client, worker="w0")
        for tid in ("a", "b", "c", "d"):
            task = _task(n=1)
            task.id = tid
            replicas = set()
            for _ in range(4):
                turn = await agent(task, ctx)
                assert turn is not None
                assert "error" not in turn
                replicas.add(turn["replica"])
            assert len(replicas) == 1


@pytest.mark.asyncio
async def test_service_without_replica_is_an_outage_not_an_error_turn() -> None:
    """No replica within the wait: the step did not happen, so no turn is recorded
    (the worker stops resumably instead of writing the task failed)."""
    agent = _agent(prompt="hello")
    client = LLMClient(
        StaticReplicaSource({"llm": []}), {"llm": ClientPolicy(wait_for_replica=0.2)}
    )
    task = _task()
    try:
        with pytest.raises(ServiceUnavailable, match="llm"):
            await agent(task, AgentContext(llm=client, worker="w0"))
    finally:
        await client.close()
    assert task.history == []


@pytest.mark.asyncio
async def test_unknown_service_is_an_outage() -> None:
    agent = _agent(prompt="hello", service="missing")
    client = LLMClient(
        StaticReplicaSource({}), {}, default_policy=ClientPolicy(wait_for_replica=0.1)
    )
    try:
        with pytest.raises(ServiceUnavailable, match="missing"):
            await agent(_task(), AgentContext(llm=client, worker="w0"))
    finally:
        await client.close()
