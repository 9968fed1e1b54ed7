"""``--engine ENGINE [--url URL] [--model NAME]``: every LLM service swapped, as overrides.

Why overrides: the swapped config is then an ordinary config (validated, saved in the run
directory, seen by the servers and by `resume`) and the user's own ``KEY=VALUE`` arguments,
applied after these, still win. A dry run keeps each service's ``simulated`` section (its
profile and script) whatever engine the config names.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

ENGINES = ("simulated", "llamacpp", "vllm", "external")


def engine_overrides(
    services: Iterable[str], engine: str | None, url: str | None, model: str | None
) -> list[str]:
    """The ``KEY=VALUE`` overrides of the swap; ValueError says which flag is missing or stray.

    ``external`` points each service at the one endpoint ``url`` as a single replica (one
    endpoint is one replica: the config's replica count was for servers it would start),
    serving ``model`` or, when unset, the first model the endpoint lists. Values are
    JSON-quoted: a URL's ``#`` or ``: `` must not be read as YAML.
    """
    if engine is None:
        if url is not None or model is not None:
            raise ValueError(
                "--url and --model go with --engine (e.g. --engine external --url URL)"
            )
        return []
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine}: not one of {', '.join(ENGINES)}")
    if engine == "external" and not url:
        raise ValueError("--engine external needs --url URL (the endpoint's base URL, e.g. .../v1)")
    if engine != "external" and url is not None:
        raise ValueError("--url goes with --engine external")
    out: list[str] = []
    for name in services:
        key = f"services.{name}"
        out.append(f"{key}.engine={engine}")
        if engine == "external":
            out += [f"{key}.url={json.dumps(url)}", f"{key}.replicas=1"]
        if engine == "external" or model is not None:
            out.append(f"{key}.model={json.dumps(model)}")  # null: the endpoint's own model
    return out
