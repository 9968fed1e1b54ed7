"""The ``sandboxes:`` section and the checks of the roles that use a sandbox.

Kept beside the main schema so that the sandbox keys, their bounds and their
cross-checks read in one place. Sizes accept bytes or ``512M`` / ``1G``; an unknown key,
a size that is not one, ``network: host`` without saying so, or a role naming a sandbox
that does not exist are errors that name the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, field_validator

from matrixhpc.sandbox.limits import parse_size

from .bounds import duration, integer, unknown_name

if TYPE_CHECKING:
    from .schema import RoleConfig, RunConfig

Problems = list[tuple[str, str]]

_jinja = jinja2.Environment()
MAX_SANDBOXES = 16  # per config: each worker's slots get uids from a block per sandbox


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SandboxLimitsConfig(_Strict):
    wall_s: float = duration(30.0, "wall time of one exec (then TERM, and KILL after grace_s)")
    grace_s: float = duration(2.0, "between TERM and KILL", zero_ok=True, high=600.0)
    memory: int | None = Field(  # bytes, or "512M" / "1G"; null: not limited
        "1G",
        strict=True,
        ge=2**20,
        le=2**50,
        validate_default=True,
        description="memory of one sandbox: bytes, or '512M', '1G'; null: not limited",
    )
    pids: int | None = integer(256, 1, 1_000_000, "processes and threads of one sandbox")
    output_bytes: int = integer(65536, 64, 2**30, "bytes kept of each of stdout and stderr")

    @field_validator("memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        """'512M' / '1G' to bytes, before the bounds are checked."""
        return parse_size(value) if isinstance(value, str) else value


class SandboxConfig(_Strict):
    backend: Literal["bubblewrap", "apptainer"] = "bubblewrap"
    image: str | None = None  # apptainer: a .sif file; bubblewrap: a root directory (optional)
    pool: int = integer(4, 1, 1024, "live sandboxes per worker, reused across tasks")
    network: Literal["none", "host"] = "none"
    limits: SandboxLimitsConfig = SandboxLimitsConfig()
    start_timeout: float = duration(60.0, "an instance's start and readiness probe")
    idle_s: float = duration(300.0, "an idle live instance is stopped after this")
    keep_s: float = duration(600.0, "a task that left keeps its sandbox on the worker this long")
    acquire_timeout: float = duration(600.0, "a task waits this long for a free slot")
    scratch: str | None = None  # node-local directory for the slots; default $TMPDIR or /tmp
    env: dict[str, str] = {}  # environment inside the sandbox
    apptainer: str | None = None  # the apptainer binary; default: found on PATH / installed


def sandbox_problems(cfg: RunConfig) -> Problems:
    out: Problems = []
    if len(cfg.sandboxes) > MAX_SANDBOXES:
        out.append(("sandboxes", f"at most {MAX_SANDBOXES} sandboxes"))
    for name, box in cfg.sandboxes.items():
        key = f"sandboxes.{name}"
        if box.backend == "apptainer" and not box.image:
            out.append((f"{key}.image", "the apptainer backend needs an image (a .sif file)"))
        if box.backend == "apptainer" and box.image and not box.image.endswith(".sif"):
            out.append((f"{key}.image", "a SIF file (.sif), never a sandbox directory"))
    for name, role in cfg.roles.items():
        out += _role_problems(cfg, f"roles.{name}", role)
    return out


def _role_problems(cfg: RunConfig, key: str, role: RoleConfig) -> Problems:
    out: Problems = []
    if role.sandbox is not None and role.sandbox not in cfg.sandboxes:
        out.append((f"{key}.sandbox", unknown_name("sandbox", role.sandbox, cfg.sandboxes)))
    if role.kind != "sandbox":
        for field in ("command", "code_from", "stdin"):
            if getattr(role, field) is not None:
                out.append((f"{key}.{field}", "only for kind: sandbox"))
        return out
    if role.sandbox is None:
        out.append((f"{key}.sandbox", "a sandbox role needs sandbox: <a name in sandboxes>"))
    if role.command is None and role.code_from is None:
        out.append((f"{key}.command", "a sandbox role needs a command or code_from: <role>"))
    if role.code_from is not None and role.code_from not in cfg.roles:
        out.append((f"{key}.code_from", unknown_name("role", role.code_from, cfg.roles)))
    for field in ("command", "stdin"):
        source = getattr(role, field)
        try:
            _jinja.parse(source or "")
        except jinja2.TemplateSyntaxError as exc:
            out.append((f"{key}.{field}", f"does not compile: {exc.message}"))
    return out
