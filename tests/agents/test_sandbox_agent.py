"""kind: sandbox and TaskSandbox over real bubblewrap: commands, code blocks, replay."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_asyncio
from sandbox_fixtures import LIMITS, NO_BWRAP, bwrap_spec

from matrixhpc.agents.base import AgentContext
from matrixhpc.agents.sandbox import SandboxAgent, last_code_block
from matrixhpc.agents.sandboxing import OPS, TaskSandbox, recorded_ops, sandbox_worker
from matrixhpc.sandbox.factory import make_sandboxes
from matrixhpc.sandbox.service import Sandboxes
from matrixhpc.task import Task

CODE = "Here it is:\n```python\nprint(sum(range(10)))\n```\nand a note."


@pytest_asyncio.fixture
async def boxes(scratch: Path) -> AsyncIterator[Sandboxes]:
    if shutil.which("bwrap") is None:
        pytest.skip(NO_BWRAP)
    sandboxes = make_sandboxes([bwrap_spec(scratch, limits=replace(LIMITS, wall_s=1.0))])
    await sandboxes.open()
    yield sandboxes
    await sandboxes.close()


def _ctx(boxes: Sandboxes, worker: str = "w0") -> AgentContext:
    return AgentContext(llm=None, worker=worker, sandboxes=boxes)  # type: ignore[arg-type]


def _task(*turns: dict[str, object]) -> Task:
    return Task(id="r0-t0", seed=1, row={"n": 4}, origin="w0", history=list(turns))  # type: ignore[arg-type]


def test_the_last_fenced_block_is_the_code() -> None:
    text = "```sh\necho one\n```\nthen\n```Python\nprint(2)\n```"
    assert last_code_block(text) == ("python", "print(2)\n")
    assert last_code_block("no code here") is None


@pytest.mark.asyncio
async def test_a_code_block_is_written_and_run_with_its_interpreter(boxes: Sandboxes) -> None:
    agent = SandboxAgent("run", sandbox="tools", command=None, code_from="coder", stdin=None)
    task = _task({"role": "coder", "content": CODE})
    turn = await agent(task, _ctx(boxes))
    assert turn is not None
    assert turn["content"] == "$ python3 main.py\n45\n[exit code 0]"
    assert turn["data"]["exit_code"] == 0
    assert [op["op"] for op in turn["data"][OPS]] == ["write", "exec"]
    assert task.state["run"] == {"ok": True, "exit_code": 0, "limit": None}


@pytest.mark.asyncio
async def test_a_templated_command_with_stdin(boxes: Sandboxes) -> None:
    agent = SandboxAgent(
        "run",
        sandbox="tools",
        command="seq {{ row.n }} | wc -l; cat",
        code_from=None,
        stdin="from stdin",
    )
    turn = await agent(_task(), _ctx(boxes))
    assert turn is not None
    assert turn["data"]["stdout"] == "4\nfrom stdin"


@pytest.mark.asyncio
async def test_a_limit_hit_is_recorded_and_fails_the_step_only_when_asked(
    boxes: Sandboxes,
) -> None:
    sleepy = "```sh\nsleep 1000\n```"
    recorded = SandboxAgent("run", sandbox="tools", command=None, code_from="c", stdin=None)
    turn = await recorded(_task({"role": "c", "content": sleepy}), _ctx(boxes))
    assert turn is not None
    assert turn["data"]["timed_out"]
    assert turn["data"]["limit"] == "wall_s"
    assert "error" not in turn
    assert "wall time limit" in turn["content"]
    failing = SandboxAgent(
        "run",
        sandbox="tools",
        command="sleep 1000",
        code_from=None,
        stdin=None,
        fail_on_limit=True,
    )
    turn = await failing(_task(), _ctx(boxes))
    assert turn is not None
    assert turn["error"] == turn["data"]["error"]


@pytest.mark.asyncio
async def test_no_code_block_is_shown_to_the_dialogue(boxes: Sandboxes) -> None:
    agent = SandboxAgent("run", sandbox="tools", command=None, code_from="coder", stdin=None)
    turn = await agent(_task({"role": "coder", "content": "I cannot."}), _ctx(boxes))
    assert turn is not None
    assert turn["content"] == "[not run: no fenced code block in coder's last reply]"
    assert "error" not in turn


@pytest.mark.asyncio
async def test_files_survive_between_steps_and_a_fresh_sandbox_is_rebuilt_by_replay(
    boxes: Sandboxes,
) -> None:
    task = _task()
    box = await TaskSandbox.open(_ctx(boxes), task, "tools")
    await box.write_file("notes.txt", "first\n")
    await box.exec("echo second >> notes.txt")
    task.history.append({"role": "a", "content": "", "worker": "w0", "data": {OPS: box.record()}})
    assert sandbox_worker(task) == "w0"
    again = await TaskSandbox.open(_ctx(boxes), task, "tools")
    assert again.replayed == 0  # the same sandbox: nothing to rebuild
    assert await again.read_file("notes.txt") == b"first\nsecond\n"
    # the task on another worker (or after a restart): a fresh sandbox, rebuilt
    await boxes.release(task.id)
    elsewhere = await TaskSandbox.open(_ctx(boxes, "w1"), task, "tools")
    assert elsewhere.replayed == 2
    assert await elsewhere.read_file("notes.txt") == b"first\nsecond\n"
    assert len(recorded_ops(task, "tools")) == 2
    assert recorded_ops(task, "other") == []


@pytest.mark.asyncio
async def test_binary_writes_are_recorded_so_that_they_replay(boxes: Sandboxes) -> None:
    task = _task()
    box = await TaskSandbox.open(_ctx(boxes), task, "tools")
    await box.write_file("blob", b"\xff\x00\xfe")
    task.history.append({"role": "a", "content": "", "data": {OPS: box.record()}})
    assert "data_b64" in box.record()[0]
    await boxes.release(task.id)
    rebuilt = await TaskSandbox.open(_ctx(boxes), task, "tools")
    assert await rebuilt.read_file("blob") == b"\xff\x00\xfe"


@pytest.mark.asyncio
async def test_tool_calls_run_in_the_sandbox_and_errors_come_back_as_tool_messages(
    boxes: Sandboxes,
) -> None:
    task = _task()
    box = await TaskSandbox.open(_ctx(boxes), task, "tools")
    tool = (
        "import json, sys\n"
        "req = json.load(sys.stdin)\n"
        "if req['name'] != 'add':\n"
        "    sys.exit('unknown tool ' + req['name'])\n"
        "print(req['arguments']['a'] + req['arguments']['b'])\n"
    )
    await box.write_file("tools.py", tool)
    calls = [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
        },
        {"id": "c2", "type": "function", "function": {"name": "mul", "arguments": "{}"}},
        {"id": "c3", "type": "function", "function": {"name": "add", "arguments": "{not json"}},
    ]
    messages = await box.tool_messages(calls, "python3 tools.py")
    assert [m["tool_call_id"] for m in messages] == ["c1", "c2", "c3"]
    assert messages[0] == {"role": "tool", "tool_call_id": "c1", "content": "5\n"}
    assert messages[1]["content"].startswith("error: exit code 1\nunknown tool mul")
    assert messages[2]["content"].startswith("error: malformed tool call")
