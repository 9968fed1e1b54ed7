"""A task's sandbox as an agent uses it: commands, files and an LLM's tool calls.

``await TaskSandbox.open(ctx, task, "tools")`` gives the step the task's sandbox on this
worker. Every operation that can change the sandbox (an exec, a file written) is
recorded, and the agent puts :meth:`TaskSandbox.record` in its turn's data
(``sandbox_ops``). The task's history is journaled and travels with the task, so the
recorded operations are the truth of what the sandbox holds: when the task's sandbox
is *fresh* here — the task came from another worker, the pool replaced a broken
instance or evicted a parked one, or the worker was restarted (kill -9, a requeue) —
``open`` first replays, in order, every operation the task's earlier turns recorded
for that sandbox, into the fresh instance, then the step goes on. That is the defined
state after a hop or a resume: the files and effects of the replayed commands (their
outputs are discarded; processes left running in the background are not revived, and a
command that reads the clock or randomness may leave something else). The step that
was running when a worker died was never journaled: it runs again, once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from matrixhpc.agents.base import AgentContext
from matrixhpc.sandbox.types import Command, ExecResult, Sandbox, SandboxError
from matrixhpc.task import Task

OPS = "sandbox_ops"  # the key of a turn's data that holds the operations it recorded


class TaskSandbox:
    def __init__(self, box: Sandbox, name: str, replayed: int) -> None:
        self.box = box
        self.name = name
        self.replayed = replayed  # operations replayed into a fresh sandbox at open
        self.ops: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, ctx: AgentContext, task: Task, name: str) -> TaskSandbox:
        """The task's sandbox ``name``, rebuilt by replay when it is fresh here."""
        if ctx.sandboxes is None:
            raise SandboxError(f"sandbox {name!r}: this run configures no sandboxes")
        box, fresh = await ctx.sandboxes.acquire(name, task.id)
        earlier = recorded_ops(task, name) if fresh else []
        for op in earlier:
            await _apply(box, op)
        return cls(box, name, len(earlier))

    async def exec(
        self, command: Command, *, stdin: bytes | str | None = None, timeout: float | None = None
    ) -> ExecResult:
        op: dict[str, Any] = {"sandbox": self.name, "op": "exec", "command": _plain(command)}
        if stdin is not None:
            op.update(_payload("stdin", stdin))
        if timeout is not None:
            op["timeout"] = timeout
        self.ops.append(op)
        return await self.box.exec(command, stdin=stdin, timeout=timeout)

    async def write_file(self, path: str, data: bytes | str) -> ExecResult:
        self.ops.append(
            {"sandbox": self.name, "op": "write", "path": path, **_payload("data", data)}
        )
        return await self.box.write_file(path, data)

    async def read_file(self, path: str) -> bytes:
        return await self.box.read_file(path)

    async def tool_messages(
        self, tool_calls: Sequence[dict[str, Any]], command: str
    ) -> list[dict[str, Any]]:
        """Run an LLM's tool calls (OpenAI format) in the sandbox, one exec of ``command``
        each with ``{"name": ..., "arguments": {...}}`` as JSON on its stdin; its stdout
        is the tool's result. A call that cannot be parsed, a non-zero exit or a limit hit
        comes back as that call's tool message (as a real API's error would), so the
        agent sees it and the dialogue goes on."""
        messages = []
        for call in tool_calls:
            function = call.get("function") or {}
            try:
                arguments = json.loads(function.get("arguments") or "{}")
                request = json.dumps({"name": function["name"], "arguments": arguments})
            except (KeyError, TypeError, ValueError) as exc:
                content = f"error: malformed tool call: {exc}"
            else:
                result = await self.exec(command, stdin=request)
                content = result.stdout if result.ok else _tool_error(result)
            messages.append(
                {"role": "tool", "tool_call_id": call.get("id", ""), "content": content}
            )
        return messages

    def record(self) -> list[dict[str, Any]]:
        """What to put in the turn's ``data["sandbox_ops"]`` (the step's operations)."""
        return list(self.ops)


def recorded_ops(task: Task, name: str) -> list[dict[str, Any]]:
    """The operations the task's turns recorded for sandbox ``name``, in order."""
    return [
        op
        for turn in task.history
        for op in (turn.get("data") or {}).get(OPS, ())
        if isinstance(op, dict) and op.get("sandbox") == name
    ]


def sandbox_worker(task: Task) -> str | None:
    """The worker that ran the task's latest sandbox operation (where its sandbox is)."""
    for turn in reversed(task.history):
        if (turn.get("data") or {}).get(OPS):
            worker = turn.get("worker")
            return worker if isinstance(worker, str) else None
    return None


async def _apply(box: Sandbox, op: dict[str, Any]) -> None:
    if op.get("op") == "write":
        await box.write_file(str(op["path"]), _unpayload(op, "data") or b"")
    elif op.get("op") == "exec":
        await box.exec(op["command"], stdin=_unpayload(op, "stdin"), timeout=op.get("timeout"))


def _plain(command: Command) -> str | list[str]:
    return command if isinstance(command, str) else list(command)


def _payload(key: str, value: bytes | str) -> dict[str, str]:
    """Text as is; bytes that are not UTF-8 as base64 (turns are JSON in the output)."""
    if isinstance(value, str):
        return {key: value}
    try:
        return {key: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{key}_b64": base64.b64encode(value).decode("ascii")}


def _unpayload(op: dict[str, Any], key: str) -> bytes | str | None:
    if f"{key}_b64" in op:
        return base64.b64decode(op[f"{key}_b64"])
    value = op.get(key)
    return value if isinstance(value, str) else None


def _tool_error(result: ExecResult) -> str:
    why = result.error or f"exit code {result.exit_code}"
    return f"error: {why}\n{result.stderr or result.stdout}".rstrip()
