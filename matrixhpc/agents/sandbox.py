"""The built-in sandbox agent (``kind: sandbox``): run a command in the task's sandbox.

The command is a Jinja template over the task (as prompts are), or the last fenced code
block of a named role's latest reply (``code_from``): the block is written to
``main.<ext>`` in the sandbox's working directory and run with the interpreter of its
language tag (``python`` -> ``python3 main.py``, ``sh``/``bash`` -> ``sh main.sh``), unless
a ``command`` says how (it sees ``file`` and ``lang``; with a command, a reply without a
code block still runs it, so that e.g. the tests report the missing solution).

The turn's content is what the command printed and its exit status (an LLM role sees it
in its dialogue); its data has the exit code, signal, ``timed_out``, the limit hit and
``error``, and the byte counts; ``state.<role>`` gets ``{ok, exit_code, limit}`` for
routing conditions. A limit hit is recorded and the run goes on (``fail_on_limit: true``
makes it fail the step).
"""

from __future__ import annotations

import re
import time
from typing import Any

from matrixhpc.agents.base import Agent, AgentContext, Resources
from matrixhpc.agents.sandboxing import OPS, TaskSandbox
from matrixhpc.agents.templates import compile_template, template_context
from matrixhpc.sandbox.types import ExecResult
from matrixhpc.task import Task, Turn

FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)
RUNNERS = {  # language tag -> (file extension, how to run it)
    "python": ("py", "python3"),
    "py": ("py", "python3"),
    "python3": ("py", "python3"),
    "sh": ("sh", "sh"),
    "shell": ("sh", "sh"),
    "bash": ("sh", "bash"),
    "": ("sh", "sh"),
}


def last_code_block(text: str) -> tuple[str, str] | None:
    """(language tag, code) of the last fenced block in ``text``."""
    blocks = FENCE.findall(text)
    if not blocks:
        return None
    lang, code = blocks[-1]
    return lang.lower(), code


class SandboxAgent(Agent):
    def __init__(
        self,
        name: str,
        *,
        sandbox: str,
        command: str | None,
        code_from: str | None,
        stdin: str | None,
        fail_on_limit: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(name, options)
        self.resources = Resources(sandbox=sandbox)
        self.sandbox = sandbox
        self.command = compile_template(command) if command else None
        self.code_from = code_from
        self.stdin = compile_template(stdin) if stdin else None
        self.fail_on_limit = fail_on_limit

    async def __call__(self, task: Task, ctx: AgentContext) -> Turn | None:
        started = time.time()
        box = await TaskSandbox.open(ctx, task, self.sandbox)
        values = template_context(task)
        default, lang = None, ""
        if self.code_from is not None:
            found = last_code_block((task.last_turn(self.code_from) or {}).get("content", ""))
            if found is None and self.command is None:
                return self._no_code(task, box, started)
            if found is not None:  # else the command runs without it and says so itself
                lang, code = found
                ext, runner = RUNNERS.get(lang, ("txt", ""))
                values.update(file=f"main.{ext}", lang=lang)
                await box.write_file(values["file"], code)
                default = f"{runner} {values['file']}" if runner else None
        command = self.command.render(values) if self.command else default
        if command is None:
            return self._no_code(task, box, started, f"no interpreter for ```{lang} blocks")
        stdin = self.stdin.render(values) if self.stdin else None
        result = await box.exec(command, stdin=stdin)
        task.state[self.name] = {
            "ok": result.ok,
            "exit_code": result.exit_code,
            "limit": result.limit,
        }
        turn: Turn = {
            "role": self.name,
            "content": _shown(command, result),
            "data": {
                **result.to_dict(),
                "command": command,
                "replayed": box.replayed,
                OPS: box.record(),
            },
            "timings": {"start": started, "end": time.time()},
        }
        if self.fail_on_limit and result.error:
            turn["error"] = result.error
        return turn

    def _no_code(
        self, task: Task, box: TaskSandbox, started: float, why: str | None = None
    ) -> Turn:
        """Nothing to run is the answer's fault, not the step's: it is shown to the
        dialogue (a reviser can fix it) and the run goes on."""
        reason = why or f"no fenced code block in {self.code_from}'s last reply"
        task.state[self.name] = {"ok": False, "exit_code": None, "limit": None}
        return {
            "role": self.name,
            "content": f"[not run: {reason}]",
            "data": {"error": reason, "replayed": box.replayed, OPS: box.record()},
            "timings": {"start": started, "end": time.time()},
        }


def _shown(command: str, result: ExecResult) -> str:
    """What the dialogue sees: the command, its output, how it ended."""
    parts = [f"$ {command}"]
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.stderr:
        parts.append(result.stderr.rstrip("\n"))
    ending = result.error or (f"killed by {result.signal}" if result.signal else None)
    parts.append(f"[exit code {result.exit_code}{'; ' + ending if ending else ''}]")
    return "\n".join(parts)
