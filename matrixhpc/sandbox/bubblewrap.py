"""The bubblewrap backend: a fresh set of namespaces per exec over the slot's directories.

Each exec is one ``bwrap`` process: ``--unshare-all`` (no network: only a loopback of its
own, unless ``network: host`` shares the host's), a read-only root (the host's system
directories, or the ``image`` directory as /), a ``--proc`` and a minimal ``--dev``, and
the slot's ``work`` and ``tmp`` bound read-write at the cwd and /tmp (everything
else, the root included, read-only): the task's files
persist between its execs, its processes do not (``--die-with-parent`` and the pid
namespace end them with the exec). Nothing else of the host is visible: not /home, not
the run directory (its keys), not the other slots (which are under the host's /tmp).
Starting a slot is making its directories: there is no long-lived process to keep.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from matrixhpc.sandbox.limits import rlimit_prefix
from matrixhpc.sandbox.slots import Slot
from matrixhpc.sandbox.spec import WORKDIR, SandboxSpec
from matrixhpc.sandbox.types import SandboxError

# what of the host makes a working root: symlinks (merged /usr) are recreated as such
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


class BubblewrapBackend:
    kind = "bubblewrap"

    def __init__(self, spec: SandboxSpec, bwrap: str | None = None) -> None:
        found = bwrap or find_bwrap()
        if found is None:
            raise SandboxError("bubblewrap (bwrap) is not installed on this node")
        self.bwrap = found
        self.spec = spec
        own_uid = spec.uid_base is not None
        self.enforcement = "rlimits, per-slot uid" if own_uid else "rlimits, shared uid"
        self.root_args = _root_args(Path(spec.image) if spec.image else None)

    async def start(self, slot: Slot) -> None:
        slot.make_dirs()

    def exec_argv(
        self, slot: Slot, argv: Sequence[str], env: Mapping[str, str]
    ) -> tuple[list[str], dict[str, str]]:
        spec = self.spec
        args = rlimit_prefix(spec.limits, own_uid=spec.uid_base is not None)
        if slot.uid is not None:  # its own uid (root only); setpriv: any event loop can run it
            args += ["setpriv", f"--reuid={slot.uid}", f"--regid={slot.gid}", "--clear-groups"]
        args.append(self.bwrap)
        args += ["--unshare-all", "--die-with-parent", "--new-session", "--hostname", "sandbox"]
        if spec.network == "host":
            args.append("--share-net")
        args += self.root_args
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--bind", str(slot.tmp), "/tmp", "--bind", str(slot.work), WORKDIR]
        args += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        return [*args, "--", *argv], {}

    def failure(self, returncode: int | None, stderr: str) -> str | None:
        """bwrap's own errors (namespaces refused, a missing path) come as ``bwrap: ...``;
        one refused for want of processes is the task's pids limit, not a failure."""
        if returncode == 1 and stderr.startswith("bwrap: ") and "temporarily" not in stderr:
            return stderr.strip().splitlines()[0]
        return None

    # nothing lives between execs: the protocol's slot and prefix are not needed here
    async def clean(self, slot: Slot) -> None:  # noqa: ARG002
        return None  # an exec's processes end with it

    async def stop(self, slot: Slot) -> None:  # noqa: ARG002
        return None

    async def stop_orphans(self, prefix: str) -> int:  # noqa: ARG002
        return 0  # --die-with-parent: a killed worker's execs died with it


def _root_args(image: Path | None) -> list[str]:
    if image is not None:
        if not image.is_dir():
            raise SandboxError(f"bubblewrap image {image} is not a directory (a root filesystem)")
        return ["--ro-bind", str(image), "/"]
    args: list[str] = []
    for name in SYSTEM_DIRS:
        host = Path("/") / name
        if host.is_symlink():
            args += ["--symlink", os.readlink(host), f"/{name}"]
        elif host.is_dir():
            args += ["--ro-bind", str(host), f"/{name}"]
    return args
