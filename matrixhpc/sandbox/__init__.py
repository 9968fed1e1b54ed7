"""Tool sandboxes: a per-task sandbox (bubblewrap or Apptainer) with enforced limits.

Agents and the runtime see only :mod:`.types` (the interface); :mod:`.pool` leases and
reuses slots, :mod:`.bubblewrap` and :mod:`.apptainer` enter them, :mod:`.process`
bounds each exec, :mod:`.limits` says how memory and processes are limited on a node.
This package knows nothing of tasks, agents, the runtime or the launchers.
"""

from matrixhpc.sandbox.types import (
    Command,
    ExecResult,
    Limits,
    Sandbox,
    SandboxError,
    SandboxProvider,
)

__all__ = ["Command", "ExecResult", "Limits", "Sandbox", "SandboxError", "SandboxProvider"]
