"""A simulated engine's script in a file of its own: ``matrixhpc serve simulated --script``.

A standalone server (a stand-in endpoint, a benchmark) has no run config to take its script
from; the file holds what ``services.<name>.simulated.script`` would, and is checked by the
same schema, so a mistake there is the same one-line error as in a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import ConfigError
from .loading import pydantic_problems
from .schema import SimulatedConfig


def load_script(path: Path) -> dict[str, Any]:
    """The script in ``path`` (YAML: ``{role: {reply|template|choice: ...}}``), validated."""
    try:
        data = yaml.safe_load(path.read_text())
        script = SimulatedConfig.model_validate({"script": data}).script
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError([(str(path), f"cannot read a script: {exc}")]) from None
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc)) from None
    return {role: entry.model_dump() for role, entry in script.items()}
