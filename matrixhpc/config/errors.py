"""The one exception a config can raise: every problem, each with its dotted key."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run; ``problems`` holds (dotted key, reason) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        lines = "\n".join(f"  {key}: {reason}" for key, reason in problems)
        super().__init__(f"invalid config:\n{lines}")
