"""The fixtures of the sandbox tests (helpers in sandbox_helpers.py)."""

from sandbox_helpers import bwrap_pool, scratch  # noqa: F401  (fixtures)
