"""The run directory layout (see DESIGN.md): one place that knows the paths."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from matrixhpc.config import RunConfig, dump_config, load_config
from matrixhpc.keys import CURVE_FILE, CurveKeys, service_key


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

    @property
    def run_info(self) -> Path:
        """``run.json``: what was launched, how, with which input (launch/runinfo.py)."""
        return self.root / "run.json"

    @property
    def curve_key(self) -> Path:
        return self.secrets / CURVE_FILE

    def load(self) -> RunConfig:
        return load_config(self.config, resolved=True)

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
            CurveKeys.create(self.curve_key)

    def service_key(self, service: str) -> Path:
        """A per-run API key for one LLM service (mode 0600), created on first use."""
        return service_key(self.secrets, service)


def default_run_dir(cfg: RunConfig, base: Path = Path("runs")) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return base / f"{cfg.name}-{stamp}"
