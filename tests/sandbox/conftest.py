"""The fixtures of the sandbox tests (helpers in tests/sandbox_fixtures.py)."""

from sandbox_fixtures import apptainer_pool, bwrap_pool, scratch  # noqa: F401  (fixtures)
