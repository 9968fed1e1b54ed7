"""The Apptainer backend: one long-lived instance per slot, an ``exec`` per command.

A slot is ``apptainer instance start`` of the image, started once and reused by task
after task (an exec into a running instance costs ~0.1 s; a cold ``apptainer exec`` of
the image mounts it again each time). The isolation flags go on ``instance start``,
the only place Apptainer honours them (an exec joins the instance's namespaces, and
``--contain`` or ``--writable`` on it are ignored): ``--containall`` (own pid and ipc
namespaces, no home, no host /tmp), ``--net --network none`` (a loopback of its own;
``network: host`` leaves the host's), ``--userns`` (SIF mounted by squashfuse, no
setuid, no loop devices: the ~256 loop-device limit of setuid mode never bites), the
slot's ``work`` and ``tmp`` bound at the cwd and /tmp, the image read-only. Limits on
memory and processes are Apptainer's cgroup flags where it can use them (see
:mod:`.limits`), else ``prlimit`` inside the image (util-linux). The instance's
start-up output goes to files in the slot's directory, never pipes (reading them would
block until the instance exits); large inputs go on stdin, never argv (~128 KB per
argument). Every call runs with ``HOME`` set to the run's directory on this node, so the
run's instances are listed apart from the user's others and a restarted worker finds
and stops those of its killed incarnation by their names (``mx-<run>-<worker>-...``).

spython is not used here: its calls are synchronous (they would stall the worker's
event loop for every exec), ``Client.execute`` has no timeout, ``Client.instance``
starts an instance reading its output through pipes, and it runs the ``singularity``
name with the process's own ``HOME``. The CLI through asyncio does all of that right.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from matrixhpc.sandbox.limits import cgroups_for_apptainer, rlimit_prefix
from matrixhpc.sandbox.process import Finished, run_bounded
from matrixhpc.sandbox.slots import Slot, run_root
from matrixhpc.sandbox.spec import WORKDIR, SandboxSpec
from matrixhpc.sandbox.types import SandboxError

INSTALLED = Path("/opt/matrixhpc/apptainer/usr/bin/apptainer")  # scripts/install-sandbox-tools.sh
PROBE_EVERY = 0.1  # the readiness probe: an exec of `true`, this often until it answers
CALL_S = 30.0  # an instance list / stop / probe that takes longer is a failure


def _start_files(slot: Slot) -> tuple[BinaryIO, BinaryIO]:
    """Where an instance's start-up output goes (local files: opening them is instant)."""
    return open(slot.dir / "start.out", "wb"), open(slot.dir / "start.err", "wb")


def find_apptainer(explicit: str | None = None) -> str | None:
    """The binary: ``explicit`` (config), ``$MATRIXHPC_APPTAINER``, PATH, the installed one."""
    for candidate in (explicit, os.environ.get("MATRIXHPC_APPTAINER")):
        if candidate:
            return candidate
    found = shutil.which("apptainer")
    if found:
        return found
    return str(INSTALLED) if INSTALLED.exists() else None


class ApptainerBackend:
    kind = "apptainer"

    def __init__(self, spec: SandboxSpec, binary: str | None = None) -> None:
        found = find_apptainer(binary)
        if found is None:
            raise SandboxError(
                "apptainer is not installed on this node (scripts/install-sandbox-tools.sh, "
                "or sandboxes.<name>.apptainer: /path/to/apptainer)"
            )
        if not spec.image or not Path(spec.image).is_file():
            raise SandboxError(f"apptainer image {spec.image} is not a file (build a .sif)")
        self.binary = found
        self.spec = spec
        self.cgroups = cgroups_for_apptainer()
        self.enforcement = (
            "cgroups (apptainer --memory, --pids-limit)"
            if self.cgroups
            else "rlimits in the image (prlimit), shared uid"
        )
        self.home = run_root(spec) / "apptainer-home"
        self.env = {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    def instance(self, slot: Slot) -> str:
        spec = self.spec
        return f"mx-{spec.run_id}-{spec.owner}-{spec.name}-{slot.index}"

    # ------------------------------------------------------------- lifecycle

    async def start(self, slot: Slot) -> None:
        """``instance start``, output to files, then exec ``true`` until it answers."""
        deadline = time.monotonic() + self.spec.start_timeout
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        slot.make_dirs()
        argv = [self.binary, "instance", "start", *self._isolation(slot)]
        argv += [str(self.spec.image), self.instance(slot)]
        out, err = _start_files(slot)  # files, not pipes (see the module's docstring)
        with out, err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=str(slot.dir),
                start_new_session=True,
            )
        try:
            code = await asyncio.wait_for(proc.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise SandboxError(f"instance start took over {self.spec.start_timeout:g} s") from None
        if code != 0:
            raise SandboxError(f"instance start failed ({code}): {self._start_error(slot)}")
        await self._probe(slot, deadline)

    def _isolation(self, slot: Slot) -> list[str]:
        spec = self.spec
        args = ["--userns", "--containall", "--cleanenv", "--no-mount", "cwd"]
        if spec.network != "host":
            args += ["--net", "--network", "none"]
        args += ["--bind", f"{slot.work}:{WORKDIR}", "--bind", f"{slot.tmp}:/tmp"]
        if self.cgroups and spec.limits.memory is not None:
            args += ["--memory", str(spec.limits.memory), "--memory-swap", str(spec.limits.memory)]
        if self.cgroups and spec.limits.pids is not None:
            args += ["--pids-limit", str(spec.limits.pids)]
        return args

    async def _probe(self, slot: Slot, deadline: float) -> None:
        """The readiness probe: the instance runs a command."""
        while True:
            done = await self._exec_in(slot, ["true"])
            if done.returncode == 0:
                return
            if time.monotonic() + PROBE_EVERY > deadline:
                why = done.stderr.text().strip() or f"exit code {done.returncode}"
                raise SandboxError(f"instance not ready: {why}")
            await asyncio.sleep(PROBE_EVERY)

    def _start_error(self, slot: Slot) -> str:
        try:
            text = (slot.dir / "start.err").read_text(errors="replace")
        except OSError:
            return "no output"
        lines = [line for line in text.splitlines() if "FATAL" in line or "ERROR" in line]
        return " | ".join(lines[-3:]) or text.strip()[-500:]

    def exec_argv(
        self, slot: Slot, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        # the environment inside through APPTAINERENV_*: values may hold commas, which
        # `--env A=1,B=2` would split
        host_env = {**self.env, **{f"APPTAINERENV_{k}": v for k, v in env.items()}}
        inner = [] if self.cgroups else rlimit_prefix(self.spec.limits, own_uid=False)
        command = [self.binary, "exec", "--cleanenv", "--pwd", WORKDIR]
        return [*command, f"instance://{self.instance(slot)}", *inner, *argv], host_env

    def failure(self, returncode: int | None, stderr: str) -> str | None:
        """Apptainer's own failures (an instance that is gone) exit 255 with FATAL."""
        if returncode == 255 and "FATAL" in stderr:
            lines = [line for line in stderr.splitlines() if "FATAL" in line]
            return lines[-1].strip() if lines else "apptainer failed"
        return None

    async def clean(self, slot: Slot) -> None:
        """Stop what the last task left running in the instance (kill -1 reaches every
        process of its pid namespace but its init and the killer itself)."""
        done = await self._exec_in(slot, ["sh", "-c", "kill -9 -1 2>/dev/null; true"])
        if done.returncode != 0:
            raise SandboxError(f"instance did not answer: {done.stderr.text().strip()}")

    async def stop(self, slot: Slot) -> None:
        await self._stop(self.instance(slot))

    async def _stop(self, name: str) -> None:
        done = await self._call(["instance", "stop", "--timeout", "5", name])
        if done.returncode != 0 and "no instance found" not in done.stderr.text():
            raise SandboxError(f"instance stop {name}: {done.stderr.text().strip()}")

    async def stop_orphans(self, prefix: str) -> int:
        """Stop this run's instances on this node whose names start with ``prefix``."""
        if not self.home.exists():
            return 0
        done = await self._call(["instance", "list", "--json"])
        try:
            listed = json.loads(done.stdout.text() or "{}").get("instances") or []
        except ValueError:
            raise SandboxError(f"instance list: {done.stderr.text().strip()}") from None
        names = [i.get("instance", "") for i in listed if str(i.get("instance")).startswith(prefix)]
        for name in names:
            await self._stop(name)
        return len(names)

    async def _exec_in(self, slot: Slot, argv: list[str]) -> Finished:
        """A short command of the backend's own in the instance (probe, clean)."""
        host, env = self.exec_argv(slot, argv, {})
        return await run_bounded(
            host,
            stdin=None,
            wall_s=CALL_S,
            grace_s=1.0,
            output_bytes=4096,
            env=env,
            cwd=str(slot.dir),
        )

    async def _call(self, args: list[str]) -> Finished:
        return await run_bounded(
            [self.binary, *args],
            stdin=None,
            wall_s=CALL_S,
            grace_s=1.0,
            output_bytes=1 << 20,
            env=self.env,
        )
