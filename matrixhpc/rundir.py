"""The run directory layout (see DESIGN.md): one place that knows the paths."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from matrixhpc.config import RunConfig, dump_config, load_config


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def registry(self) -> Path:
        return self.root / "registry"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def status(self) -> Path:
        return self.root / "status"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def pids(self) -> Path:
        return self.root / "pids.json"

    def load(self) -> RunConfig:
        return load_config(self.config)

    def create(self, cfg: RunConfig) -> None:
        """Lay out a new run directory, private to its owner, with the resolved config."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for sub in (self.registry, self.output, self.status, self.logs, self.secrets):
            sub.mkdir(exist_ok=True)
        os.chmod(self.secrets, 0o700)
        dump_config(cfg, self.config)
        for service in cfg.services:
            self.service_key(service)
        if cfg.workers.encrypt:
            from matrixhpc.runtime.transport import CurveKeys

            CurveKeys.create(self.secrets / "curve.key")

    def service_key(self, service: str) -> Path:
        """A per-run API key for one LLM service (mode 0600), created on first use."""
        path = self.secrets / f"{service}.key"
        if path.exists():
            return path
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
        try:
            os.link(tmp, path)  # first writer wins; a concurrent one keeps the winner's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
        return path


def default_run_dir(cfg: RunConfig, base: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base / f"{cfg.name}-{stamp}"
